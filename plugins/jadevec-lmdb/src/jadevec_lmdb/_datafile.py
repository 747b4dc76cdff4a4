"""LMDB's data file checked before LMDB maps it, and the meta pages of a compacted copy.

Why this exists: LMDB maps ``data.mdb`` and trusts every byte of it. A file
shorter than its meta page says faults (SIGBUS) on the missing pages; a zeroed
or garbage page trips an assertion (SIGABRT) or sends a read astray (SIGSEGV).
A damaged store must raise :class:`~jadevec.errors.CorruptionError` naming the
file instead, so before an environment is opened :func:`check` reads the file
with plain ``os.pread`` (never a mapping: a short file must not fault here
either) and checks what LMDB relies on.

Layout (LMDB 0.9, data version 1, 64-bit, the host's byte order; mdb.c's
``MDB_page``, ``MDB_meta``, ``MDB_db`` and ``MDB_node``):

* a page starts with a 16-byte header: ``mp_pgno`` (u64), ``mp_pad`` (u16),
  ``mp_flags`` (u16), then ``mp_lower``/``mp_upper`` (u16 each; an overflow
  page has ``mp_pages``, u32, there instead) and the node offsets (u16 each);
* pages 0 and 1 are meta pages: after the header, ``mm_magic`` (u32,
  0xBEEFC0DE), ``mm_version`` (u32, 1), ``mm_address``, ``mm_mapsize``, two
  48-byte ``MDB_db`` records (the free database, whose ``md_pad`` is the page
  size, and the main database), ``mm_last_pg`` and ``mm_txnid`` (u64 each).
  Transaction ``t`` writes meta page ``t & 1``; LMDB opens the one with the
  larger ``mm_txnid``;
* a node is ``mn_lo``, ``mn_hi``, ``mn_flags``, ``mn_ksize`` (u16 each), the
  key, then the data. In a branch page ``lo | hi << 16 | flags << 32`` is the
  child's page number; in a leaf it is the data size, and the data is either
  inline, a 48-byte ``MDB_db`` of a named database (``F_SUBDATA``) or the
  number of the first of its overflow pages (``F_BIGDATA``).

What :func:`check` verifies: both meta pages (magic, version, page size, page
numbers, roots, depths, ``mm_last_pg``, transaction ids), then every page
reachable from the chosen one, database by database and level by level:
type, page number, bounds of every node, key and value, overflow extents,
each database's page, entry and depth counts, that no page is reachable
twice or both reachable and on the free list, and that every reachable page
lies inside the file. A file may legitimately end before ``mm_last_pg``
(LMDB leaves pages it freed in the same transaction unwritten), but only if
every page past the end is on the free list. Key order is not checked: LMDB survives misordered
keys (a lookup misses), and it costs a comparison per key.

The walk is vectorised with numpy (one pass per level, not per node), so it
costs a read of the file and milliseconds per megabyte. A file that another
process is writing may change under the walk; a finding is only believed if
the newest transaction id did not move while the walk ran (pages of a
committed snapshot are rewritten only after a newer commit).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from jadevec.errors import CorruptionError

__all__ = ["Meta", "Summary", "adopt_txnid", "check", "read_metas"]

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
HEADER = 16  # PAGEHDRSZ on a 64-bit build
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA, F_SUBDATA = 0x01, 0x02
MDB_INTEGERKEY = 0x08
INVALID = (1 << 64) - 1  # P_INVALID: the root of an empty database
CURSOR_STACK = 32  # LMDB's deepest tree
MIN_PAGE, MAX_PAGE = 256, 0x8000
MAX_KEY = 511  # LMDB 0.9's default key size limit

_DB = struct.Struct("<IHHQQQQQ")  # MDB_db: pad, flags, depth, branch, leaf, overflow, entries, root
_META = struct.Struct("<IIQQ48s48sQQ")  # MDB_meta after the page header
META_END = HEADER + _META.size  # bytes of a meta page that hold the meta (152)
# Pages read per batch of a walk: bounds the memory of a walk of a large file.
_BATCH = 4096


@dataclass(frozen=True)
class Db:
    """An ``MDB_db`` record: the root and counters of one B-tree."""

    pad: int
    flags: int
    depth: int
    branch_pages: int
    leaf_pages: int
    overflow_pages: int
    entries: int
    root: int

    @classmethod
    def parse(cls, raw: bytes) -> Db:
        return cls(*_DB.unpack(raw))


@dataclass(frozen=True)
class Meta:
    """One meta page as read, with what is wrong with it (``problem``, or ``None``)."""

    slot: int
    raw: bytes
    pgno: int
    flags: int
    magic: int
    version: int
    mapsize: int
    free: Db
    main: Db
    last_pg: int
    txnid: int
    problem: str | None

    @property
    def psize(self) -> int:
        return self.free.pad  # mm_psize is the free database's md_pad


@dataclass
class Summary:
    """What :func:`check` found and did (``meta`` is ``None`` if a writer kept moving it)."""

    meta: Meta | None
    psize: int
    file_bytes: int
    pages: int = 0  # reachable pages, overflow pages included
    free_pages: int = 0
    databases: int = 0  # named databases walked
    repairs: list[str] = field(default_factory=list)
    identity: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the file checked

    def describe(self) -> str:
        if self.meta is None:
            return ("another process committed throughout the check, so the file was "
                    "taken as that writer keeps it")
        return (f"meta page {self.meta.slot} (transaction {self.meta.txnid}) and the other "
                f"are sound; {self.pages} pages of {self.databases} databases walked, "
                f"{self.free_pages} free, every one inside the file")


def _fail(path: Path | str, message: str) -> CorruptionError:
    return CorruptionError(f"{str(path)!r}: {message}")


def _pread(fd: int, size: int, offset: int) -> bytes:
    out = []
    while size:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        out.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(out)


# -- meta pages ------------------------------------------------------------------------------

def _parse_meta(raw: bytes, slot: int, psize: int | None) -> Meta:
    if len(raw) < META_END:
        filler = Db(0, 0, 0, 0, 0, 0, 0, INVALID)
        return Meta(slot, raw, -1, 0, 0, 0, 0, filler, filler, 0, 0,
                    f"meta page {slot} is cut short: the file ends inside it")
    pgno, _, flags = struct.unpack_from("<QHH", raw, 0)
    magic, version, _, mapsize, free, main, last_pg, txnid = _META.unpack_from(raw, HEADER)
    free_db, main_db = Db.parse(free), Db.parse(main)
    meta = Meta(slot, raw[:META_END], pgno, flags, magic, version, mapsize, free_db, main_db,
                last_pg, txnid, None)
    return _replace_problem(meta, _meta_problem(meta, psize))


def _replace_problem(meta: Meta, problem: str | None) -> Meta:
    if problem is None:
        return meta
    return Meta(**{**meta.__dict__, "problem": problem})


def _meta_problem(m: Meta, psize: int | None) -> str | None:
    """What is wrong with one meta page on its own, naming the field."""
    where = f"meta page {m.slot}"
    if not m.flags & P_META:
        return f"{where}: field mp_flags is {m.flags:#x}, not a meta page"
    if m.magic != MAGIC:
        return f"{where}: field mm_magic is {m.magic:#x}, not {MAGIC:#x} (not an LMDB file)"
    if m.version != DATA_VERSION:
        return f"{where}: field mm_version is {m.version}, this LMDB reads {DATA_VERSION}"
    if m.pgno != m.slot:
        return f"{where}: field mp_pgno is {m.pgno}"
    size = m.psize
    if size & (size - 1) or not MIN_PAGE <= size <= MAX_PAGE:
        return f"{where}: field mm_psize is {size}, not a page size"
    if psize is not None and size != psize:
        return f"{where}: field mm_psize is {size} but meta page 0 says {psize}"
    if m.txnid and (m.txnid & 1) != m.slot:
        return f"{where}: field mm_txnid is {m.txnid}, but transaction {m.txnid} writes " \
               f"meta page {m.txnid & 1}"
    if not 1 <= m.last_pg < 1 << 48:
        return f"{where}: field mm_last_pg is {m.last_pg}"
    for name, db in (("free", m.free), ("main", m.main)):
        if db.root != INVALID and not 2 <= db.root <= m.last_pg:
            return f"{where}: field md_root of the {name} database is {db.root}, " \
                   f"outside pages 2..{m.last_pg}"
        if db.depth > CURSOR_STACK or (db.root == INVALID) != (db.depth == 0):
            return f"{where}: field md_depth of the {name} database is {db.depth}"
    if m.free.flags != MDB_INTEGERKEY:
        return f"{where}: field md_flags of the free database is {m.free.flags:#x}"
    if m.main.flags:
        return f"{where}: field md_flags of the main database is {m.main.flags:#x}"
    return None


def read_metas(fd: int, path: Path | str) -> tuple[Meta, Meta]:
    """Both meta pages, each with its own ``problem``; raises if neither gives a page size."""
    head = _pread(fd, META_END, 0)
    if len(head) < META_END:
        raise _fail(path, f"the file is {len(head)} bytes, shorter than LMDB's first meta "
                          f"page ({META_END} bytes)")
    m0 = _parse_meta(head, 0, None)
    if m0.problem is None:
        return m0, _parse_meta(_pread(fd, META_END, m0.psize), 1, m0.psize)
    # Page 0 is damaged, so its mm_psize cannot say where page 1 is: look for
    # a sound meta page 1 at every page size LMDB can use.
    size = MIN_PAGE
    while size <= MAX_PAGE:
        m1 = _parse_meta(_pread(fd, META_END, size), 1, size)
        if m1.problem is None:
            return _replace_problem(m0, _meta_problem(m0, size) or m0.problem), m1
        size *= 2
    raise _fail(path, f"both meta pages are damaged: {m0.problem}; no sound meta page 1 "
                      f"at any page size")


def choose(m0: Meta, m1: Meta, path: Path | str) -> tuple[Meta, Meta | None]:
    """The meta LMDB must use (the newer valid one) and, if the other is damaged, it.

    Raises when both are bad, or when both look valid but their transaction ids
    cannot belong to one file (then neither can be trusted to be the newer).
    """
    if m0.problem and m1.problem:
        raise _fail(path, f"both meta pages are damaged: {m0.problem}; {m1.problem}")
    if m0.problem or m1.problem:
        good, bad = (m1, m0) if m0.problem else (m0, m1)
        return good, bad
    if (m0.txnid or m1.txnid) and abs(m0.txnid - m1.txnid) != 1:
        raise _fail(path, f"the meta pages disagree: field mm_txnid is {m0.txnid} in meta "
                          f"page 0 and {m1.txnid} in meta page 1 (they differ by one in a "
                          f"sound file)")
    return (m1 if m1.txnid > m0.txnid else m0), None


# -- the walk --------------------------------------------------------------------------------

class _Pages:
    """Pages of the file read with ``os.preadv``, in runs of consecutive page numbers."""

    def __init__(self, fd: int, psize: int, file_pages: int) -> None:
        self.fd, self.psize, self.file_pages = fd, psize, file_pages

    def read(self, pgnos: np.ndarray) -> np.ndarray:
        """Rows of ``psize`` bytes, one per page of ``pgnos`` (ascending, inside the file)."""
        out = np.empty((len(pgnos), self.psize), dtype=np.uint8)
        start = 0
        breaks = np.flatnonzero(np.diff(pgnos) != 1) + 1
        for end in [*breaks.tolist(), len(pgnos)]:
            view = memoryview(out[start:end]).cast("B")
            offset = int(pgnos[start]) * self.psize
            while view.nbytes:
                got = os.preadv(self.fd, [view], offset)
                if not got:
                    raise OSError("the file shrank while it was checked")
                view, offset = view[got:], offset + got
            start = end
        return out


def _u16(words: np.ndarray, rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The u16 at (even) byte ``offsets`` of page ``rows``; ``words`` is the pages as u16."""
    return words[rows, offsets >> 1].astype(np.int64)


def _u64(pages: np.ndarray, rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    value = np.zeros(len(rows), dtype=np.uint64)
    for byte in range(8):
        value |= pages[rows, offsets + byte].astype(np.uint64) << np.uint64(8 * byte)
    return value


class _Walk:
    """One pass over every page reachable from a meta page."""

    def __init__(self, fd: int, path: Path | str, meta: Meta, file_bytes: int) -> None:
        self.path = path
        self.meta = meta
        self.psize = meta.psize
        self.next_pgno = meta.last_pg + 1
        self.file_pages = file_bytes // self.psize
        # A meta page may claim pages past the end of the file (freed tail pages
        # LMDB never wrote); far past it is damage, and must not size the bitmaps.
        if self.next_pgno > self.file_pages + max(self.file_pages, 1 << 20):
            raise _fail(path, f"the file holds {self.file_pages} pages but meta page "
                              f"{meta.slot} (transaction {meta.txnid}) records "
                              f"mm_last_pg {meta.last_pg}: the file was truncated or the "
                              f"field is damaged")
        self.pages = _Pages(fd, self.psize, self.file_pages)
        self.live = np.zeros(self.next_pgno, dtype=bool)
        self.free = np.zeros(self.next_pgno, dtype=bool)
        self.subdatabases: list[tuple[str, Db]] = []
        self.free_records: list[bytes] = []
        self.summary = Summary(meta, self.psize, file_bytes)

    def fail(self, message: str) -> CorruptionError:
        return _fail(self.path, message)

    def run(self) -> Summary:
        self.tree("free", self.meta.free, kind="free")
        self.tree("main", self.meta.main, kind="main")
        for name, db in self.subdatabases:
            self.tree(name, db, kind="sub")
        for raw in self.free_records:
            self.free_list(raw)
        # Pages past the end of the file are legitimate only as free pages LMDB
        # never wrote; anything else means the file lost its tail, or
        # mm_last_pg claims pages that never existed.
        tail = self.free[self.file_pages:]
        if not tail.all():
            missing = self.file_pages + int(np.flatnonzero(~tail)[0])
            raise self.fail(
                f"the file holds {self.file_pages} pages of {self.psize} bytes but meta page "
                f"{self.meta.slot} (transaction {self.meta.txnid}) records mm_last_pg "
                f"{self.meta.last_pg}, and page {missing} is neither in the file nor free: "
                f"the file is shorter than its meta page says (truncated), or the field is "
                f"damaged")
        both = np.flatnonzero(self.live & self.free)
        if both.size:
            raise self.fail(f"page {int(both[0])} is both in use and on the free list "
                            f"({both.size} such pages)")
        self.summary.pages = int(self.live.sum())
        self.summary.free_pages = int(self.free.sum())
        self.summary.databases = len(self.subdatabases)
        return self.summary

    def claim(self, pgnos: np.ndarray, what: str) -> None:
        """Mark pages reachable; each must exist, lie in the file and be claimed once."""
        if not pgnos.size:
            return
        bad = (pgnos < 2) | (pgnos >= self.next_pgno)
        if bad.any():
            raise self.fail(f"{what} refers to page {int(pgnos[bad][0])}, outside pages "
                            f"2..{self.next_pgno - 1} (field mm_last_pg of meta page "
                            f"{self.meta.slot})")
        past = pgnos >= self.file_pages
        if past.any():
            raise self.fail(
                f"the file holds {self.file_pages} pages of {self.psize} bytes but {what} "
                f"needs page {int(pgnos[past][0])}; meta page {self.meta.slot} (transaction "
                f"{self.meta.txnid}) records mm_last_pg {self.meta.last_pg}: the file is "
                f"shorter than its meta page says (truncated)")
        index = pgnos.astype(np.int64)
        if self.live[index].any() or np.unique(index).size != index.size:
            raise self.fail(f"{what}: a page is reachable more than once")
        self.live[index] = True

    def tree(self, name: str, db: Db, kind: str) -> None:
        what = f"database {name!r}"
        if db.root == INVALID:
            if db.depth or db.entries or db.branch_pages or db.leaf_pages or \
                    db.overflow_pages:
                raise self.fail(f"{what} has no root but its counters are not zero")
            return
        if not 1 <= db.depth <= CURSOR_STACK:
            raise self.fail(f"{what}: field md_depth is {db.depth}")
        counts = {"branch": 0, "leaf": 0, "overflow": 0, "entries": 0}
        frontier = np.array([db.root], dtype=np.uint64)
        level = 1
        while frontier.size:
            if level > db.depth:
                raise self.fail(f"{what} is deeper than its md_depth {db.depth}")
            frontier = np.sort(frontier)
            self.claim(frontier, what)
            leaf = level == db.depth
            children = []
            for start in range(0, frontier.size, _BATCH):
                batch = frontier[start:start + _BATCH]
                got = self.page_batch(batch, what, leaf, kind, counts)
                if got is not None:
                    children.append(got)
            counts["leaf" if leaf else "branch"] += frontier.size
            frontier = np.concatenate(children) if children else np.zeros(0, np.uint64)
            level += 1
        if level - 1 != db.depth:
            raise self.fail(f"{what}: field md_depth is {db.depth}, the tree has {level - 1} "
                            f"levels")
        for field_name, walked in (("md_branch_pages", counts["branch"]),
                                   ("md_leaf_pages", counts["leaf"]),
                                   ("md_overflow_pages", counts["overflow"]),
                                   ("md_entries", counts["entries"])):
            recorded = getattr(db, field_name[3:])
            if recorded != walked:
                raise self.fail(f"{what}: field {field_name} is {recorded}, the tree has "
                                f"{walked}")

    def page_batch(self, pgnos: np.ndarray, what: str, leaf: bool, kind: str,
                   counts: dict[str, int]) -> np.ndarray | None:
        psize = self.psize
        pages = self.pages.read(pgnos)
        header = pages[:, :HEADER].copy()
        stored = header[:, :8].view("<u8")[:, 0]
        flags, lower, upper = (header[:, 10:16].view("<u2").astype(np.int64).T)
        wrong = np.flatnonzero(stored != pgnos)
        if wrong.size:
            i = int(wrong[0])
            raise self.fail(f"page {int(pgnos[i])} of {what}: field mp_pgno is "
                            f"{int(stored[i])}")
        want = P_LEAF if leaf else P_BRANCH
        wrong = np.flatnonzero(flags != want)
        if wrong.size:
            i = int(wrong[0])
            raise self.fail(f"page {int(pgnos[i])} of {what}: field mp_flags is "
                            f"{int(flags[i]):#x}, expected a {'leaf' if leaf else 'branch'} "
                            f"page")
        wrong = np.flatnonzero((lower < HEADER) | (lower > upper) | (upper > psize)
                               | ((lower - HEADER) % 2 != 0) | ((upper % 2) != 0))
        if wrong.size:
            i = int(wrong[0])
            raise self.fail(f"page {int(pgnos[i])} of {what}: fields mp_lower/mp_upper are "
                            f"{int(lower[i])}/{int(upper[i])}")
        nkeys = (lower - HEADER) >> 1
        if not leaf and (nkeys < 1).any():
            i = int(np.flatnonzero(nkeys < 1)[0])
            raise self.fail(f"branch page {int(pgnos[i])} of {what} has no children")
        rows = np.repeat(np.arange(len(pgnos)), nkeys)
        slots = np.arange(rows.size) - np.repeat(np.cumsum(nkeys) - nkeys, nkeys)
        words = pages.view("<u2")  # node offsets and node headers are 2-byte aligned
        ptr = _u16(words, rows, HEADER + 2 * slots)
        bad = (ptr < upper[rows]) | (ptr + 8 > psize) | (ptr % 2 != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"page {int(pgnos[rows[i]])} of {what}: node {int(slots[i])} "
                            f"starts at byte {int(ptr[i])}, outside the page's nodes")
        lo, hi = _u16(words, rows, ptr), _u16(words, rows, ptr + 2)
        nflags, ksize = _u16(words, rows, ptr + 4), _u16(words, rows, ptr + 6)
        keys_end = ptr + 8 + ksize
        bad = (keys_end > psize) | (ksize > MAX_KEY)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"page {int(pgnos[rows[i]])} of {what}: node {int(slots[i])} "
                            f"has a key of {int(ksize[i])} bytes that does not fit")
        dsize = lo | (hi << 16)
        self.tiled(pgnos, rows, ptr, upper,
                   keys_end + (0 if not leaf else np.where(nflags & F_BIGDATA, 8, dsize)), what)
        if not leaf:
            return (lo | (hi << 16) | (nflags << 32)).astype(np.uint64)
        counts["entries"] += int(rows.size)
        allowed = F_BIGDATA | (F_SUBDATA if kind == "main" else 0)
        bad = (nflags & ~allowed) != 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"page {int(pgnos[rows[i]])} of {what}: node {int(slots[i])} "
                            f"has flags {int(nflags[i]):#x}")
        big = (nflags & F_BIGDATA) != 0
        inline_end = keys_end + np.where(big, 8, dsize)
        bad = inline_end > psize
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"page {int(pgnos[rows[i]])} of {what}: node {int(slots[i])} "
                            f"has a value of {int(dsize[i])} bytes that does not fit")
        if big.any():
            self.overflow(pages, rows[big], keys_end[big], dsize[big], pgnos, what, counts,
                          keep=kind == "free")
        sub = (nflags & F_SUBDATA) != 0
        for i in np.flatnonzero(sub).tolist():
            self.subdatabase(pages[rows[i]], int(ptr[i]), int(ksize[i]), int(dsize[i]),
                             int(nflags[i]), what)
        if kind == "free":
            for i in np.flatnonzero(~big).tolist():
                start = int(keys_end[i])
                self.free_records.append(pages[rows[i], start:start + int(dsize[i])].tobytes())
        return None

    def tiled(self, pgnos: np.ndarray, rows: np.ndarray, ptr: np.ndarray, upper: np.ndarray,
              ends: np.ndarray, what: str) -> None:
        """Nodes must cover ``[mp_upper, psize)`` exactly, each from its offset to the next.

        LMDB 0.9 keeps them so (a node is added at ``mp_upper``, a deleted one's
        bytes are closed up), and trusts it: deleting a node whose size field
        was damaged shifts its neighbours by the wrong amount and writes past
        the page, corrupting the heap.
        """
        order = np.argsort(rows * (MAX_PAGE * 2) + ptr, kind="stable")
        r, start, end = rows[order], ptr[order], (ends[order] + 1) & ~1  # node sizes are even
        first = np.ones(r.size, dtype=bool)
        first[1:] = r[1:] != r[:-1]
        last = np.ones(r.size, dtype=bool)
        last[:-1] = first[1:]
        bad = first & (start != upper[r])
        bad |= last & (end != self.psize)
        bad[:-1] |= ~last[:-1] & (end[:-1] != start[1:])
        # A page without nodes must have no node bytes either.
        empty = np.ones(len(pgnos), dtype=bool)
        empty[r] = False
        if bad.any() or (empty & (upper != self.psize)).any():
            i = int(np.flatnonzero(bad)[0]) if bad.any() else None
            page = int(pgnos[r[i]]) if i is not None else int(pgnos[np.flatnonzero(
                empty & (upper != self.psize))[0]])
            raise self.fail(f"page {page} of {what}: its nodes do not tile the bytes from "
                            f"mp_upper to the end of the page (a size field is damaged)")

    def overflow(self, pages: np.ndarray, rows: np.ndarray, at: np.ndarray, dsize: np.ndarray,
                 pgnos: np.ndarray, what: str, counts: dict[str, int], keep: bool) -> None:
        first = _u64(pages, rows, at)
        count = (HEADER - 1 + dsize) // self.psize + 1
        if int(count.sum()) > self.next_pgno:
            raise self.fail(f"{what}: values on pages {int(pgnos[rows[0]])}.. claim "
                            f"{int(count.sum())} overflow pages, more than the file has")
        bad = (first < 2) | (first >= self.next_pgno) | (
            first + count.astype(np.uint64) > np.uint64(self.next_pgno))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"{what}: a value on page {int(pgnos[rows[i]])} claims overflow "
                            f"pages {int(first[i])}..+{int(count[i])}, outside the file's "
                            f"pages 2..{self.next_pgno - 1}")
        extents = np.repeat(first, count) + (
            np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        ).astype(np.uint64)
        self.claim(extents, f"{what} (overflow pages)")
        counts["overflow"] += int(count.sum())
        order = np.argsort(first)
        heads = np.empty((len(first), self.psize), dtype=np.uint8)
        heads[order] = self.pages.read(first[order])
        header = heads[:, :HEADER].copy()
        stored = header[:, :8].view("<u8")[:, 0]
        flags = header[:, 10:12].view("<u2")[:, 0]
        npages = header[:, 12:16].view("<u4")[:, 0]
        bad = (stored != first) | (flags != P_OVERFLOW) | (npages != count)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(f"overflow page {int(first[i])} of {what}: header says page "
                            f"{int(stored[i])}, flags {int(flags[i]):#x}, {int(npages[i])} "
                            f"pages; expected an overflow run of {int(count[i])}")
        if keep:  # free-list records are read back in full
            for i in range(len(first)):
                raw = _pread(self.pages.fd, int(count[i]) * self.psize,
                             int(first[i]) * self.psize)
                self.free_records.append(raw[HEADER:HEADER + int(dsize[i])])

    def subdatabase(self, page: np.ndarray, at: int, ksize: int, dsize: int, nflags: int,
                    what: str) -> None:
        key = page[at + 8:at + 8 + ksize].tobytes()
        name = key.decode("utf-8", "backslashreplace")
        if nflags & F_BIGDATA or dsize != _DB.size:
            raise self.fail(f"{what}: the record of database {name!r} is {dsize} bytes, "
                            f"not {_DB.size}")
        db = Db.parse(page[at + 8 + ksize:at + 8 + ksize + _DB.size].tobytes())
        if db.flags:
            raise self.fail(f"database {name!r}: field md_flags is {db.flags:#x}")
        self.subdatabases.append((name, db))

    def free_list(self, raw: bytes) -> None:
        if len(raw) < 8 or len(raw) % 8:
            raise self.fail(f"a free-list record is {len(raw)} bytes, not a list of page "
                            f"numbers")
        ids = np.frombuffer(raw, dtype="<u8")
        if int(ids[0]) != ids.size - 1:
            raise self.fail(f"a free-list record counts {int(ids[0])} pages but holds "
                            f"{ids.size - 1}")
        listed = ids[1:]
        bad = (listed < 2) | (listed >= self.next_pgno)
        if bad.any():
            raise self.fail(f"the free list names page {int(listed[bad][0])}, outside pages "
                            f"2..{self.next_pgno - 1}")
        index = listed.astype(np.int64)
        if self.free[index].any() or np.unique(index).size != index.size:
            raise self.fail("the free list names a page twice")
        self.free[index] = True


# -- the check -------------------------------------------------------------------------------

def check(path: Path, repair: bool = False, attempts: int = 3) -> Summary:
    """Check ``path`` (a ``data.mdb``) before LMDB opens it; raise CorruptionError naming it.

    With ``repair`` (a writer holding the store's writer lock), a damaged meta
    page beside a sound one is rewritten from the sound one, which is what
    LMDB itself needs before it will open the file; ``Summary.repairs`` says
    so. A reader gets the CorruptionError instead.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        summary = _check_fd(fd, path, repair, attempts)
        summary.identity = (st.st_dev, st.st_ino)
        return summary
    finally:
        os.close(fd)


def _check_fd(fd: int, path: Path, repair: bool, attempts: int) -> Summary:
    for attempt in range(attempts):
        before = _meta_bytes_now(fd)
        try:
            meta, damaged = choose(*read_metas(fd, path), path)
            if damaged is not None and not repair:
                raise _fail(path, f"{damaged.problem}; open the store for writing once to "
                                  f"rebuild it from meta page {meta.slot}")
            summary = _Walk(fd, path, meta, os.fstat(fd).st_size).run()
        except (CorruptionError, OSError) as exc:
            # A writer elsewhere may have committed (and reused pages of the
            # snapshot) while we read: only a finding on a still file counts.
            if _meta_bytes_now(fd) == before:
                if isinstance(exc, CorruptionError):
                    raise
                raise _fail(path, f"reading the file failed: {exc}") from exc
            if attempt + 1 < attempts:
                continue
            # Still moving: a live writer keeps the file, and LMDB's reader
            # slot protects the snapshot this process reads from here on.
            return Summary(None, 0, os.fstat(fd).st_size)
        if damaged is not None:
            summary.repairs.append(_rebuild_meta(path, meta, damaged))
        return summary
    raise AssertionError("unreachable")  # pragma: no cover


def _meta_bytes_now(fd: int) -> bytes:
    """The bytes of both meta pages' meta, where page 0 says page 1 is (or at 4 KiB)."""
    head = _pread(fd, META_END, 0)
    size = int.from_bytes(head[40:44], "little") if len(head) >= 44 else 0
    if size & (size - 1) or not MIN_PAGE <= size <= MAX_PAGE:
        size = 4096
    return head + _pread(fd, META_END, size)


def _meta_bytes(template: Meta, slot: int, txnid: int) -> bytes:
    """Meta page ``slot`` with ``template``'s meta and ``txnid`` (header and meta only)."""
    header = struct.pack("<QHHI", slot, 0, P_META, 0)
    body = bytearray(template.raw[HEADER:META_END])
    struct.pack_into("<Q", body, _META.size - 8, txnid)
    return header + bytes(body)


def _write_metas(path: Path, pages: Iterator[tuple[int, bytes]], psize: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for slot, raw in pages:
            os.pwrite(fd, raw, slot * psize)
        os.fsync(fd)
    finally:
        os.close(fd)


def _rebuild_meta(path: Path, good: Meta, bad: Meta) -> str:
    # The rebuilt page describes the same tree one transaction earlier, so LMDB
    # opens the sound one; the next commit overwrites the rebuilt one anyway.
    txnid = max(good.txnid - 1, 0)
    _write_metas(path, iter([(bad.slot, _meta_bytes(good, bad.slot, txnid))]), good.psize)
    # A damaged page that still reads as the next transaction probably held it.
    lost = bad.txnid == good.txnid + 1
    return (f"meta page {bad.slot} of {str(path)!r} was damaged ({bad.problem}); rebuilt it "
            f"from meta page {good.slot} (transaction {good.txnid})"
            + (f"; transaction {bad.txnid}, which it recorded, is lost" if lost else ""))


def adopt_txnid(path: Path, txnid: int) -> None:
    """Give a compacted copy's meta pages the transaction ids of the store it replaces.

    LMDB's compacting copy writes its tree in meta page 1 with transaction 1
    and an empty database in meta page 0. A process that still has the old
    environment open keeps ``lock.mdb`` alive, and LMDB picks the meta page of
    a new transaction from the id cached there (``txnid & 1``), not from the
    data file; with the copy's own ids it could pick the empty page. So both
    pages get the copied tree: transaction ``txnid`` in page ``txnid & 1`` and
    ``txnid - 1`` in the other, whichever page a reader or writer picks.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        m0, m1 = read_metas(fd, path)
    finally:
        os.close(fd)
    tree = m1 if m1.txnid > m0.txnid else m0
    if tree.problem:
        raise _fail(path, f"the compacted copy is unsound: {tree.problem}")
    slot = txnid & 1
    _write_metas(path, iter([(slot, _meta_bytes(tree, slot, txnid)),
                             (1 - slot, _meta_bytes(tree, 1 - slot, max(txnid - 1, 0)))]),
                 tree.psize)
