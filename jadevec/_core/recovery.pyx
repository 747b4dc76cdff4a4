"""Open-time checks, recovery and verification of a vector file set.

``VectorFile.open`` maps the four files and hands them to :func:`load`,
which reads the headers with ``pread`` and checks every field before
anything mapped is used (docs/vector_file_format.md, "Open and recovery").
A clean file set is open after that; one that was not closed cleanly is
*recovered*: the slot records are the truth, so the index is rebuilt from
them (per id, the valid record with the highest sequence wins) and a clean
checkpoint is written. :func:`verify` is the full check behind
``VectorFile.verify``: every checksum and cross-reference, read-only.

Thread rules: :func:`load` runs before the file is shared, so it takes no
lock; :func:`verify` is called with the file's reader lock held.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from jadevec._core._types cimport uint8_t, uint32_t, uint64_t
from jadevec._core.layout cimport (
    JV_ABSENT,
    JV_COMMIT_B_OFFSET,
    JV_ENTRY_EMPTY,
    JV_ENTRY_LIVE,
    JV_ENTRY_TOMBSTONE,
    JV_FILE_HEADER,
    JV_FORMAT_VERSION,
    JV_FOUND,
    JV_HEADER_PAGE,
    JV_MAGIC_IDS,
    JV_MAGIC_INDEX,
    JV_MAGIC_SLOTS,
    JV_MAGIC_VECTORS,
    JV_MAX_DIMENSION,
    JV_MAX_ID_BYTES,
    JV_MAX_SLOTS,
    JV_SLOT_DELETED,
    JV_SLOT_LIVE,
    JV_SLOT_SUPERSEDED,
    JV_STATE_CLEAN,
    jv_commit,
    jv_crc32c,
    jv_entry,
    jv_entry_crc,
    jv_hash,
    jv_header_crc_ok,
    jv_id_record,
    jv_id_record_size,
    jv_ids_header,
    jv_index_header,
    jv_key_of_slot,
    jv_slot,
    jv_slot_crc,
    jv_slot_is_blank,
    jv_slot_supersede,
    jv_slots_header,
    jv_table_find,
    jv_table_put,
    jv_table_remove,
    jv_table_size_for,
)
from jadevec._core.mapped_file cimport raise_os_error
from jadevec._core.vector_file cimport (
    FILE_IDS,
    FILE_INDEX,
    FILE_SLOTS,
    FILE_VEC,
    SLOT_RECORD,
    Status,
    VectorFile,
    raise_status,
    row_stride_for,
)

import time

from jadevec._core.vector_file import FILE_NAMES
from jadevec.errors import UnsupportedVersionError

__all__ = ["load", "verify"]


def load(VectorFile vf):
    """Check the headers of a file set just mapped (read with pread), then open
    it clean or recover it (read-only: use it as it is and say so).
    """
    cdef jv_commit rec, best
    cdef bytes page
    cdef uint64_t vec_size = vf.vec._size
    if vec_size < JV_HEADER_PAGE:
        raise vf.corrupt(FILE_VEC, f"file is {vec_size} bytes, shorter than its "
                         f"{JV_HEADER_PAGE}-byte header page (truncated)")
    page = vf.vec.pread(0, JV_HEADER_PAGE)
    problems = []
    cdef bint have = False
    memset(&best, 0, sizeof(best))
    for offset, label in ((0, "A"), (JV_COMMIT_B_OFFSET, "B")):
        memcpy(&rec, <const char *>page + <int>offset, sizeof(jv_commit))
        if page[offset:offset + 64] == bytes(64):
            problems.append(f"commit record {label} is empty")
            continue
        if rec.magic != JV_MAGIC_VECTORS:
            problems.append(f"commit record {label}: bad magic 0x{rec.magic:08x} "
                            f"(expected 0x{JV_MAGIC_VECTORS:08x})")
            continue
        if rec.version > JV_FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{vf._file(FILE_VEC)}: format version {rec.version} in commit "
                f"record {label}; this jadevec reads version {JV_FORMAT_VERSION} "
                f"(upgrade jadevec)")
        if rec.version != JV_FORMAT_VERSION:
            problems.append(f"commit record {label}: bad version {rec.version}")
            continue
        if jv_crc32c(0, &rec, 60) != rec.crc:
            problems.append(f"commit record {label}: header checksum mismatch")
            continue
        if not have or rec.generation > best.generation:
            best = rec
            have = True
    if not have:
        raise vf.corrupt(FILE_VEC, "no valid commit record: " + "; ".join(problems))
    if not 1 <= best.dimension <= JV_MAX_DIMENSION:
        raise vf.corrupt(FILE_VEC, f"dimension {best.dimension} out of range")
    if best.row_stride != row_stride_for(best.dimension):
        raise vf.corrupt(FILE_VEC, f"row_stride {best.row_stride} does not match "
                         f"dimension {best.dimension}")
    if best.data_offset != JV_HEADER_PAGE or best.index_offset != JV_FILE_HEADER:
        raise vf.corrupt(FILE_VEC, f"data_offset {best.data_offset} / index_offset "
                         f"{best.index_offset} differ from {JV_HEADER_PAGE} / "
                         f"{JV_FILE_HEADER}")
    if best.capacity > JV_MAX_SLOTS or best.high_water > best.capacity:
        raise vf.corrupt(FILE_VEC, f"high_water {best.high_water} exceeds capacity "
                         f"{best.capacity}")
    if best.vector_count > best.high_water:
        raise vf.corrupt(FILE_VEC, f"vector_count {best.vector_count} exceeds "
                         f"high_water {best.high_water}")
    vf.dimension = best.dimension
    vf.row_stride = best.row_stride
    vf.capacity = best.capacity
    vf.high_water = best.high_water
    vf.generation = best.generation
    if vec_size < JV_HEADER_PAGE + <uint64_t>vf.capacity * vf.row_stride:
        raise vf.corrupt(FILE_VEC, f"file is {vec_size} bytes, capacity {vf.capacity} "
                         f"needs {JV_HEADER_PAGE + <uint64_t>vf.capacity * vf.row_stride} "
                         f"(truncated)")
    if vf.slots._size < JV_FILE_HEADER + <uint64_t>vf.capacity * SLOT_RECORD:
        raise vf.corrupt(FILE_SLOTS, f"file is {vf.slots._size} bytes, capacity "
                         f"{vf.capacity} needs "
                         f"{JV_FILE_HEADER + <uint64_t>vf.capacity * SLOT_RECORD} (truncated)")
    reasons = load_headers(vf, best)
    vf.closed = False
    vf.refresh()
    if not reasons:
        return None
    if vf.read_only:
        # Nothing may be written: use the table as it is and say so.
        vf._report = {"recovered": False, "needs_recovery": True, "reasons": reasons}
        count_table(vf)
        return None
    recover(vf, reasons)
    return None


cdef list load_headers(VectorFile vf, jv_commit best):
    """Check the three file headers; return why recovery is needed ([] if not)."""
    cdef jv_slots_header sh
    cdef jv_index_header ih
    cdef jv_ids_header dh
    cdef bytes raw
    cdef uint32_t magic
    cdef int which
    reasons = []
    if best.state != JV_STATE_CLEAN:
        reasons.append("the file set was not closed cleanly")
    for which, magic in ((FILE_SLOTS, JV_MAGIC_SLOTS), (FILE_INDEX, JV_MAGIC_INDEX),
                         (FILE_IDS, JV_MAGIC_IDS)):
        f = (vf.vec, vf.slots, vf.index, vf.idfile)[which]
        raw = f.pread(0, JV_FILE_HEADER)
        if len(raw) < JV_FILE_HEADER:
            raise vf.corrupt(which, f"file is {len(raw)} bytes, shorter than its "
                             f"{JV_FILE_HEADER}-byte header (truncated)")
        memcpy(&sh, <const char *>raw, JV_FILE_HEADER)
        if sh.magic != magic:
            raise vf.corrupt(which, f"bad magic 0x{sh.magic:08x} "
                             f"(expected 0x{magic:08x})")
        if sh.version > JV_FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{vf._file(which)}: format version {sh.version}; this jadevec "
                f"reads version {JV_FORMAT_VERSION} (upgrade jadevec)")
        if sh.version != JV_FORMAT_VERSION:
            raise vf.corrupt(which, f"bad version {sh.version}")
        if not jv_header_crc_ok(<const char *>raw):
            reasons.append(f"{FILE_NAMES[which]}: header checksum mismatch")
        elif sh.generation != best.generation and best.state == JV_STATE_CLEAN:
            reasons.append(f"{FILE_NAMES[which]}: header generation {sh.generation} "
                           f"differs from the commit's {best.generation}")
    raw = vf.slots.pread(0, JV_FILE_HEADER)
    memcpy(&sh, <const char *>raw, JV_FILE_HEADER)
    raw = vf.index.pread(0, JV_FILE_HEADER)
    memcpy(&ih, <const char *>raw, JV_FILE_HEADER)
    raw = vf.idfile.pread(0, JV_FILE_HEADER)
    memcpy(&dh, <const char *>raw, JV_FILE_HEADER)
    vf.next_seq = sh.next_sequence
    vf.ids_end = dh.end
    vf.table.size = ih.table_size
    vf.table.live = ih.live
    vf.table.tombs = ih.tombstones
    if reasons:
        return reasons
    # The headers are current: their fields must make sense, or it is damage.
    if sh.record_size != SLOT_RECORD or sh.dimension != vf.dimension or sh.next_sequence < 1:
        raise vf.corrupt(FILE_SLOTS, f"header fields record_size={sh.record_size} "
                         f"dimension={sh.dimension} next_sequence={sh.next_sequence}")
    if (ih.entry_size != sizeof(jv_entry) or ih.table_size < 8
            or ih.table_size & (ih.table_size - 1) or ih.table_size > (1ULL << 40)):
        raise vf.corrupt(FILE_INDEX, f"header fields entry_size={ih.entry_size} "
                         f"table_size={ih.table_size}")
    if (vf.index._size < JV_FILE_HEADER
            or ih.table_size > (vf.index._size - JV_FILE_HEADER) // sizeof(jv_entry)):
        raise vf.corrupt(FILE_INDEX, f"file is {vf.index._size} bytes, table_size "
                         f"{ih.table_size} needs "
                         f"{JV_FILE_HEADER + ih.table_size * sizeof(jv_entry)} (truncated)")
    if ih.live + ih.tombstones > ih.table_size or ih.live != best.vector_count:
        raise vf.corrupt(FILE_INDEX, f"live={ih.live} tombstones={ih.tombstones} "
                         f"disagree with table_size {ih.table_size} or vector_count "
                         f"{best.vector_count}")
    if dh.end < JV_FILE_HEADER or dh.end % 8 or dh.end > vf.idfile._size:
        raise vf.corrupt(FILE_IDS, f"end {dh.end} outside the file "
                         f"({vf.idfile._size} bytes) (truncated)")
    return []


cdef int count_table(VectorFile vf) except -1:
    """Recount live and tombstone entries (read-only open of a dirty file)."""
    cdef uint64_t i, live = 0, tombs = 0
    cdef uint64_t size = vf.table.size
    # Divide rather than multiply: a damaged table_size (2^62) times 32 wraps.
    if (size < 8 or size & (size - 1) or vf.index._size < JV_FILE_HEADER
            or size > (vf.index._size - JV_FILE_HEADER) // sizeof(jv_entry)):
        raise vf.corrupt(FILE_INDEX, f"table_size {size} unusable; open the file "
                         f"for writing once to rebuild it")
    for i in range(size):
        if vf.table.entries[i].flags == JV_ENTRY_LIVE:
            live += 1
        elif vf.table.entries[i].flags == JV_ENTRY_TOMBSTONE:
            tombs += 1
    vf.table.live = live
    vf.table.tombs = tombs
    # Slots written after the last commit are past high_water: readable.
    vf.high_water = <uint32_t>min((vf.vec._size - JV_HEADER_PAGE) // vf.row_stride,
                                  (vf.slots._size - JV_FILE_HEADER) // SLOT_RECORD,
                                  <uint64_t>JV_MAX_SLOTS)
    vf.refresh()
    return 0


# -- recovery ------------------------------------------------------------


cdef int recover(VectorFile vf, list reasons) except -1:
    """Rebuild the index from the slot records, then checkpoint clean.

    Per id, the valid LIVE or DELETED record with the highest sequence
    wins (docs/vector_file_format.md, "Open and recovery").
    """
    cdef double started = time.perf_counter()
    cdef uint64_t cap64 = min((vf.vec._size - JV_HEADER_PAGE) // vf.row_stride,
                              (vf.slots._size - JV_FILE_HEADER) // SLOT_RECORD,
                              <uint64_t>JV_MAX_SLOTS)
    cdef uint32_t cap = <uint32_t>cap64
    cdef uint32_t s, hw = 0
    cdef uint64_t max_seq = 0, ids_end = JV_FILE_HEADER, pos, h, i, off, table_size
    cdef uint64_t n_live = 0, n_deleted = 0, n_superseded = 0, n_candidates = 0
    cdef jv_slot *rec
    cdef jv_slot *other
    cdef jv_id_record *idr
    cdef const char *key
    cdef uint32_t klen
    cdef int rc
    cdef uint32_t vbytes = vf.dimension * 4
    cdef Status st
    dropped = []
    vf.capacity = cap
    vf.high_water = cap  # the key function may look at any record while scanning
    vf.refresh()
    # Pass 1: which records count; size the table for them.
    cdef uint8_t *good = <uint8_t *>malloc(max(cap, 1))
    if good == NULL:
        raise MemoryError()
    try:
        for s in range(cap):
            good[s] = 0
            rec = vf.slot_rec(s)
            if jv_slot_is_blank(rec):
                continue
            hw = s + 1
            if jv_slot_crc(rec) != rec.crc:
                dropped.append(f"slot {s}: record checksum mismatch")
                continue
            if rec.flags not in (JV_SLOT_LIVE, JV_SLOT_DELETED, JV_SLOT_SUPERSEDED):
                dropped.append(f"slot {s}: unknown flags {rec.flags}")
                continue
            if rec.sequence > max_seq:
                max_seq = rec.sequence
            off = rec.id_offset
            if jv_key_of_slot(&vf.keys, s, &key, &klen) != 0:
                dropped.append(f"slot {s}: id reference out of bounds")
                continue
            idr = <jv_id_record *>(vf.idfile.map.base + off)
            if jv_crc32c(0, key, klen) != idr.crc:
                dropped.append(f"slot {s}: id checksum mismatch")
                continue
            ids_end = max(ids_end, off + jv_id_record_size(klen))
            if rec.flags == JV_SLOT_SUPERSEDED:
                n_superseded += 1
                continue
            if (rec.flags == JV_SLOT_LIVE
                    and jv_crc32c(0, vf.row(s), vbytes) != rec.vector_crc):
                dropped.append(f"slot {s}: vector checksum mismatch")
                continue
            good[s] = 1
            n_candidates += 1
        # Pass 2: rebuild the table, keeping the newest record per id.
        table_size = jv_table_size_for(n_candidates)
        with nogil:
            rc = vf.index.c_grow(JV_FILE_HEADER + table_size * sizeof(jv_entry))
        if rc:
            raise_os_error(rc, "grow", vf.index.path)
        vf.refresh()
        memset(vf.table.entries, 0, table_size * sizeof(jv_entry))
        vf.table.size = table_size
        vf.table.live = 0
        vf.table.tombs = 0
        for s in range(cap):
            if not good[s]:
                continue
            rec = vf.slot_rec(s)
            jv_key_of_slot(&vf.keys, s, &key, &klen)
            h = jv_hash(key, klen) & vf.hash_mask
            rc = jv_table_find(&vf.table, h, key, klen, &pos)
            if rc == JV_FOUND:
                other = vf.slot_rec(vf.table.entries[pos].slot)
                if other.sequence >= rec.sequence:
                    jv_slot_supersede(rec)
                    continue
                jv_slot_supersede(other)
            elif rc != JV_ABSENT:
                raise vf.corrupt(FILE_INDEX, f"rebuilding the index failed ({rc})")
            jv_table_put(&vf.table, pos, h, s, vbytes, rec.vector_crc,
                         <uint32_t>rec.sequence)
        # Tombstone winners: the id is absent.
        for i in range(table_size):
            if vf.table.entries[i].flags == JV_ENTRY_LIVE:
                if vf.slot_rec(vf.table.entries[i].slot).flags == JV_SLOT_DELETED:
                    jv_table_remove(&vf.table, i)
                    n_deleted += 1
                else:
                    n_live += 1
    finally:
        free(good)
    vf.high_water = hw
    vf.next_seq = max_seq + 1
    vf.ids_end = ids_end
    vf.refresh()
    with nogil:
        rc = vf.rehash_locked(0, &st)
        # Every slot below high_water but the live ones is free once the
        # SUPERSEDED marks above are durable, which the checkpoint makes them.
        if rc == 0:
            rc = vf.build_free_locked(&st)
        if rc == 0:
            vf.dirty = True
            rc = vf.checkpoint_locked(JV_STATE_CLEAN, &st)
    if rc:
        raise_status(vf, &st)
    vf.dirty = False
    vf._report = {
        "recovered": True,
        "reasons": reasons,
        "slots_scanned": cap,
        "live": n_live,
        "deleted": n_deleted,
        "superseded": n_superseded,
        "dropped": dropped,
        "seconds": time.perf_counter() - started,
    }
    return 0


# -- verify ----------------------------------------------------------------

def verify(VectorFile vf):
    """Check every checksum and cross-reference of an open file set.

    Returns the list of problems found (empty: the file set is sound). The
    caller holds the file's reader lock.
    """
    problems = []
    check(vf, problems)
    return problems


cdef int check(VectorFile vf, list problems) except -1:
    cdef jv_commit c
    cdef const jv_entry *e
    cdef jv_slot *rec
    cdef const jv_id_record *idr
    cdef const char *key
    cdef uint32_t klen, s
    cdef uint64_t i, live = 0, off
    cdef uint32_t vbytes = vf.dimension * 4
    vec_name, slots_name, index_name, ids_name = [vf._file(i) for i in range(4)]
    for f in (vf.vec, vf.slots, vf.index, vf.idfile):
        if f.file_size() < f.size:
            problems.append(f"{f.path}: file is {f.file_size()} bytes, shorter than "
                            f"the {f.size} mapped (truncated while open)")
            return 0
    page = vf.vec.pread(0, JV_HEADER_PAGE)
    for offset, label in ((0, "A"), (JV_COMMIT_B_OFFSET, "B")):
        memcpy(&c, <const char *>page + <int>offset, sizeof(c))
        if page[offset:offset + 64] == bytes(64):
            continue
        if c.magic != JV_MAGIC_VECTORS or c.version != JV_FORMAT_VERSION:
            problems.append(f"{vec_name}: commit record {label}: bad magic or version")
        elif jv_crc32c(0, &c, 60) != c.crc:
            problems.append(f"{vec_name}: commit record {label}: header checksum mismatch")
    for f in (vf.slots, vf.index, vf.idfile):
        raw = f.pread(0, JV_FILE_HEADER)
        if not jv_header_crc_ok(<const char *>raw):
            problems.append(f"{f.path}: header checksum mismatch")
    for i in range(vf.table.size):
        e = &vf.table.entries[i]
        if e.flags == JV_ENTRY_EMPTY:
            continue
        if e.flags != JV_ENTRY_LIVE and e.flags != JV_ENTRY_TOMBSTONE:
            problems.append(f"{index_name}: entry {i}: unknown flags {e.flags}")
            continue
        if jv_entry_crc(e) != e.crc:
            problems.append(f"{index_name}: entry {i}: entry checksum mismatch")
            continue
        if e.flags == JV_ENTRY_TOMBSTONE:
            continue
        live += 1
        s = e.slot
        if s >= vf.high_water:
            problems.append(f"{index_name}: entry {i}: slot {s} past high_water "
                            f"{vf.high_water}")
            continue
        if e.size != vbytes:
            problems.append(f"{index_name}: entry {i}: size {e.size} != {vbytes}")
        rec = vf.slot_rec(s)
        if jv_slot_crc(rec) != rec.crc:
            problems.append(f"{slots_name}: slot {s}: record checksum mismatch")
            continue
        if rec.flags != JV_SLOT_LIVE:
            problems.append(f"{slots_name}: slot {s}: flags {rec.flags}, but index "
                            f"entry {i} says live")
        if <uint32_t>rec.sequence != e.sequence or rec.vector_crc != e.vector_crc:
            problems.append(f"{index_name}: entry {i}: sequence or vector checksum "
                            f"differs from slot {s}")
        if jv_key_of_slot(&vf.keys, s, &key, &klen) != 0:
            problems.append(f"{slots_name}: slot {s}: id reference out of bounds")
            continue
        idr = <const jv_id_record *>(key - 8)
        if jv_crc32c(0, key, klen) != idr.crc:
            problems.append(f"{ids_name}: id of slot {s}: id checksum mismatch")
        elif (jv_hash(key, klen) & vf.hash_mask) != e.hash:
            problems.append(f"{index_name}: entry {i}: hash differs from its id's")
        if jv_crc32c(0, vf.row(s), vbytes) != e.vector_crc:
            problems.append(f"{vec_name}: slot {s}: vector checksum mismatch")
    if live != vf.table.live:
        problems.append(f"{index_name}: {live} live entries, header count "
                        f"{vf.table.live}")
    for s in range(vf.high_water):
        rec = vf.slot_rec(s)
        if jv_slot_is_blank(rec):
            continue
        if jv_slot_crc(rec) != rec.crc:
            problems.append(f"{slots_name}: slot {s}: record checksum mismatch")
        elif rec.flags > JV_SLOT_SUPERSEDED:
            problems.append(f"{slots_name}: slot {s}: unknown flags {rec.flags}")
    off = JV_FILE_HEADER
    while off + 8 <= vf.ids_end:
        idr = <const jv_id_record *>(vf.idfile.map.base + off)
        if idr.length == 0 or idr.length > JV_MAX_ID_BYTES or \
                off + 8 + idr.length > vf.ids_end:
            problems.append(f"{ids_name}: id record at {off}: bad length {idr.length}")
            break
        if jv_crc32c(0, vf.idfile.map.base + off + 8, idr.length) != idr.crc:
            problems.append(f"{ids_name}: id record at {off}: id checksum mismatch")
        off += jv_id_record_size(idr.length)
    return 0
