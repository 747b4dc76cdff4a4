"""Open-time checks, recovery and verification of a vector file set.

``VectorFile.open`` maps the files and hands the set to :func:`load`, which
reads the commit records and static headers with ``pread`` and checks every
field before anything mapped is used (docs/vector_file_format.md, "Open and
recovery"). A reader, or a writer that finds a clean commit, is open after
that. A writer that finds a dirty commit (the last writer never closed)
*recovers*: the newest commit is the base, and the slot records written after
it are replayed in sequence order into a fresh table; a clean checkpoint
follows. :func:`verify_fileset` is the full check behind
``VectorFile.verify``: every checksum and cross-reference, read-only.

Thread rules: :func:`load` runs before the set is shared, so it takes no
lock; :func:`verify_fileset` runs with the set's read lock (and, for a
reader, a snapshot) held by the caller.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from jadevec._core._types cimport uint32_t, uint64_t
from jadevec._core.fileset cimport raise_status
from jadevec._core.mapped_file cimport jv_mfile_sync, raise_os_error
from jadevec._core.layout cimport (
    JV_COMMIT_B_OFFSET,
    JV_ENTRY_EMPTY,
    JV_ENTRY_LIVE,
    JV_ENTRY_TOMBSTONE,
    JV_FILE_HEADER,
    JV_FILE_IDS,
    JV_FILE_INDEX,
    JV_FILE_SLOTS,
    JV_FILE_VEC,
    JV_FORMAT_VERSION,
    JV_FOUND,
    JV_HEADER_PAGE,
    JV_ID_ALIGN,
    JV_MAGIC_IDS,
    JV_MAGIC_INDEX,
    JV_MAGIC_SLOTS,
    JV_MAX_DIMENSION,
    JV_MAX_ID_BYTES,
    JV_MAX_COUNTER,
    JV_MAX_SLOTS,
    JV_MAX_TABLE,
    JV_MIN_TABLE,
    JV_PAGE,
    JV_PAGE_ENTRIES,
    JV_SLOT_DELETED,
    JV_SLOT_LIVE,
    JV_SLOT_RECORD,
    JV_STATE_CLEAN,
    JV_STATE_MOVED,
    JV_ST_MOVED,
    jv_commit,
    jv_commit_check,
    jv_crc32c,
    jv_entry,
    jv_entry_at,
    jv_entry_check,
    jv_entry_crc,
    jv_fail,
    jv_fileset,
    jv_fs_build_free,
    jv_fs_checkpoint,
    jv_fs_load_map,
    jv_fs_open_readers,
    jv_fs_rehash,
    jv_fs_snap_begin,
    jv_fs_snap_end,
    jv_fs_slot,
    jv_fs_row,
    jv_hash,
    jv_header_crc_ok,
    jv_id_append,
    jv_id_at,
    jv_id_record,
    jv_id_record_size,
    jv_row_stride_for,
    jv_slot,
    jv_slot_crc,
    jv_slot_is_blank,
    jv_slot_seal,
    jv_snapshot,
    jv_status,
    jv_table,
    jv_table_find,
    jv_table_pages,
    jv_table_put,
    jv_table_remove,
)

import os
import time

from jadevec.errors import CorruptionError, UnsupportedVersionError

__all__ = []

_NAMES = ("vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid", "readers.jvrd")


cdef str file_path(str folder, int which):
    return os.path.join(folder, _NAMES[which])


cdef object corrupt(str folder, int which, str message):
    return CorruptionError(f"{file_path(folder, which)}: {message}")


cdef bytes pread_all(jv_fileset *fs, int which, uint64_t offset, uint64_t length):
    cdef int fd = fs.f[which].fd
    return os.pread(fd, length, offset)


# -- open ------------------------------------------------------------------------


cdef object load(jv_fileset *fs, str folder):
    cdef jv_commit rec[2]
    cdef jv_commit best
    cdef jv_status st
    cdef int record = -1
    cdef int rc
    cdef uint64_t offset
    cdef uint64_t vec_size = fs.f[JV_FILE_VEC].size
    if vec_size < JV_HEADER_PAGE:
        raise corrupt(folder, JV_FILE_VEC, f"file is {vec_size} bytes, shorter than its "
                      f"{JV_HEADER_PAGE}-byte header page (truncated)")
    page = pread_all(fs, JV_FILE_VEC, 0, JV_HEADER_PAGE)
    if len(page) < JV_HEADER_PAGE:
        raise corrupt(folder, JV_FILE_VEC, "the header page cannot be read whole (truncated)")
    memcpy(&rec[0], <const char *>page, sizeof(jv_commit))
    memcpy(&rec[1], <const char *>page + JV_COMMIT_B_OFFSET, sizeof(jv_commit))
    problems = []
    for i, label in ((0, "A"), (1, "B")):
        check = jv_commit_check(&rec[i])
        if check == 2:
            raise UnsupportedVersionError(
                f"{file_path(folder, JV_FILE_VEC)}: format version {rec[i].version} in commit "
                f"record {label}; this jadevec reads version {JV_FORMAT_VERSION} (upgrade "
                f"jadevec, or export with the jadevec that wrote it)")
        if check == 1:
            problems.append(f"commit record {label} failed its magic, version or checksum")
        elif check == 0 and (record < 0 or rec[i].generation > rec[record].generation):
            record = i
    if record < 0:
        raise corrupt(folder, JV_FILE_VEC, "no valid commit record: " + "; ".join(
            problems or ["both are empty"]))
    best = rec[record]
    check_commit(fs, folder, &best)
    check_headers(fs, folder, &best)
    fs.dimension = best.dimension
    fs.row_stride = best.row_stride
    fs.capacity = best.capacity
    fs.high_water = best.high_water
    fs.set_id = best.set_id
    fs.newest = best
    fs.newest_record = record
    fs.generation = best.generation
    fs.next_seq = best.next_sequence
    fs.ids_end = best.ids_end
    fs.pages.tag = best.generation
    cdef bytes folder_b = os.fsencode(folder)
    if jv_fs_open_readers(fs, folder_b, &st) != 0:
        raise_status(folder, &st)
    fallback = None
    if problems:
        fallback = (f"{'; '.join(problems)}: a commit torn by a crash, or damage; opened "
                    f"at generation {best.generation} from record {'AB'[record]}")
    if best.state == JV_STATE_MOVED:
        jv_fail(&st, JV_ST_MOVED, JV_FILE_VEC, NULL, 0)
        raise_status(folder, &st)
    if fs.read_only:
        # Check the newest commit whole now (map included), so damage shows
        # at open; every call reads the newest commit of its own time.
        check_snapshot(fs, folder)
        return None if fallback is None else {"recovered": False, "fallback": fallback}
    load_table(fs, folder, &best, record, &rec[1 - record])
    if problems:
        # A writer clears the record that failed its checks (reported above):
        # the newest valid commit holds the state and the next checkpoint
        # writes into that slot; until then verify() would report, as damage,
        # a torn commit that nothing needs. Readers pick the same record.
        offset = 0 if record == 1 else JV_COMMIT_B_OFFSET
        memset(fs.f[JV_FILE_VEC].map.base + offset, 0, sizeof(jv_commit))
        rc = jv_mfile_sync(&fs.f[JV_FILE_VEC], offset, sizeof(jv_commit), 0)
        if rc:
            fs.failed = 1  # a failed barrier cannot be retried safely
            raise_os_error(rc, "msync of a cleared commit record",
                           file_path(folder, JV_FILE_VEC))
        fallback += f"; record {'BA'[record]} was cleared"
    if best.state == JV_STATE_CLEAN:
        if fallback is None:
            return None
        return {"recovered": False, "fallback": fallback, "generation": best.generation}
    return recover(fs, folder, fallback)


cdef int check_commit(jv_fileset *fs, str folder, jv_commit *c) except -1:
    """The winning commit record's fields must make sense, and the files hold them."""
    if not 1 <= c.dimension <= JV_MAX_DIMENSION:
        raise corrupt(folder, JV_FILE_VEC, f"commit field dimension is {c.dimension}")
    if c.row_stride != jv_row_stride_for(c.dimension):
        raise corrupt(folder, JV_FILE_VEC, f"commit field row_stride {c.row_stride} does not "
                      f"match dimension {c.dimension}")
    if c.data_offset != JV_HEADER_PAGE:
        raise corrupt(folder, JV_FILE_VEC, f"commit field data_offset is {c.data_offset}")
    if c.capacity > JV_MAX_SLOTS or c.high_water > c.capacity:
        raise corrupt(folder, JV_FILE_VEC, f"commit field high_water {c.high_water} exceeds "
                      f"capacity {c.capacity}")
    if c.vector_count > c.high_water:
        raise corrupt(folder, JV_FILE_VEC, f"commit field vector_count {c.vector_count} "
                      f"exceeds high_water {c.high_water}")
    if (c.table_size < JV_MIN_TABLE or c.table_size > JV_MAX_TABLE
            or c.table_size & (c.table_size - 1)):
        raise corrupt(folder, JV_FILE_VEC, f"commit field table_size is {c.table_size}")
    if c.vector_count + c.tombstones > c.table_size:
        raise corrupt(folder, JV_FILE_VEC, f"commit fields vector_count {c.vector_count} + "
                      f"tombstones {c.tombstones} exceed table_size {c.table_size}")
    if c.next_sequence < 1:
        raise corrupt(folder, JV_FILE_VEC, "commit field next_sequence is 0")
    if c.next_sequence >= JV_MAX_COUNTER or c.generation >= JV_MAX_COUNTER:
        raise corrupt(folder, JV_FILE_VEC, f"commit fields generation {c.generation} or "
                      f"next_sequence {c.next_sequence} are out of range")
    if (c.ids_end < JV_FILE_HEADER or c.ids_end % JV_ID_ALIGN
            or c.ids_end > fs.f[JV_FILE_IDS].size):
        raise corrupt(folder, JV_FILE_IDS, f"commit field ids_end {c.ids_end} is outside the "
                      f"file ({fs.f[JV_FILE_IDS].size} bytes) (truncated?)")
    need = JV_HEADER_PAGE + <uint64_t>c.capacity * c.row_stride
    if fs.f[JV_FILE_VEC].size < need:
        raise corrupt(folder, JV_FILE_VEC, f"file is {fs.f[JV_FILE_VEC].size} bytes, capacity "
                      f"{c.capacity} needs {need} (truncated)")
    need = JV_FILE_HEADER + <uint64_t>c.capacity * JV_SLOT_RECORD
    if fs.f[JV_FILE_SLOTS].size < need:
        raise corrupt(folder, JV_FILE_SLOTS, f"file is {fs.f[JV_FILE_SLOTS].size} bytes, "
                      f"capacity {c.capacity} needs {need} (truncated)")
    return 0


cdef int check_headers(jv_fileset *fs, str folder, jv_commit *c) except -1:
    """The static headers: magic, version, unit, set_id (and the slots' dimension)."""
    cdef uint32_t magic, version, unit, dimension, want_magic, want_unit
    cdef int which
    cdef uint64_t set_id
    for which, want_magic, want_unit in ((JV_FILE_SLOTS, <uint32_t>JV_MAGIC_SLOTS,
                                          <uint32_t>JV_SLOT_RECORD),
                                         (JV_FILE_INDEX, <uint32_t>JV_MAGIC_INDEX,
                                          <uint32_t>JV_PAGE),
                                         (JV_FILE_IDS, <uint32_t>JV_MAGIC_IDS,
                                          <uint32_t>JV_ID_ALIGN)):
        raw = pread_all(fs, which, 0, JV_FILE_HEADER)
        if len(raw) < JV_FILE_HEADER:
            raise corrupt(folder, which, f"file is {len(raw)} bytes, shorter than its "
                          f"{JV_FILE_HEADER}-byte header (truncated)")
        magic = int.from_bytes(raw[0:4], "little")
        version = int.from_bytes(raw[4:8], "little")
        set_id = int.from_bytes(raw[8:16], "little")
        dimension = int.from_bytes(raw[16:20], "little")
        unit = int.from_bytes(raw[20:24], "little")
        if magic != want_magic:
            raise corrupt(folder, which, f"header field magic is 0x{magic:08x} (expected "
                          f"0x{want_magic:08x})")
        if version > JV_FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{file_path(folder, which)}: format version {version}; this jadevec reads "
                f"version {JV_FORMAT_VERSION} (upgrade jadevec)")
        if version != JV_FORMAT_VERSION:
            raise corrupt(folder, which, f"header field version is {version}")
        if not jv_header_crc_ok(<const char *>raw):
            raise corrupt(folder, which, "header checksum mismatch")
        if unit != want_unit:
            raise corrupt(folder, which, f"header field unit is {unit} (expected {want_unit})")
        if set_id != c.set_id:
            raise corrupt(folder, which, f"header field set_id {set_id:#x} differs from the "
                          f"commit's {c.set_id:#x}: the file belongs to another file set")
        if which == JV_FILE_SLOTS and dimension != c.dimension:
            raise corrupt(folder, which, f"header field dimension {dimension} differs from "
                          f"the commit's {c.dimension}")
    return 0


cdef int check_snapshot(jv_fileset *fs, str folder) except -1:
    cdef jv_snapshot *s
    cdef jv_status st
    cdef int rc
    with nogil:
        rc = jv_fs_snap_begin(fs, &s, &st)
    if rc:
        raise_status(folder, &st)
    jv_fs_snap_end(fs, s)
    return 0


cdef int load_table(jv_fileset *fs, str folder, jv_commit *best, int record,
                    jv_commit *other) except -1:
    """A writer's working table: the newest commit's, read through its page map."""
    cdef jv_status st
    cdef uint32_t *map = NULL
    cdef int rc = jv_fs_load_map(fs, &fs.f[JV_FILE_INDEX], best, &map, &st)
    if rc < 0:
        raise_status(folder, &st)
    if rc == 1:
        raise corrupt(folder, JV_FILE_INDEX, f"page map checksum mismatch (commit generation "
                      f"{best.generation})")
    fs.table.base = fs.f[JV_FILE_INDEX].map.base
    fs.table.map = map
    fs.table.size = best.table_size
    fs.table.live = best.vector_count
    fs.table.tombs = best.tombstones
    fs.table.ids = fs.f[JV_FILE_IDS].map.base
    fs.table.ids_end = best.ids_end
    fs.table.slot_limit = best.high_water
    fs.table.pages = &fs.pages
    fs.table.owned_pages = 0
    cdef uint64_t tp = best.table_size // JV_PAGE_ENTRIES
    cdef uint64_t ap = (tp * 4 + JV_PAGE - 1) // JV_PAGE
    cdef uint64_t npages = fs.f[JV_FILE_INDEX].size // JV_PAGE
    cdef uint64_t i, first
    fs.area_pages = ap
    fs.area_current = 0
    fs.area[0] = <uint32_t>(best.index_offset // JV_PAGE)
    fs.area[1] = 0
    # The other commit's map area can be the second area if it is whole and
    # overlaps nothing the newest commit names.
    if jv_commit_check(other) == 0 and other.table_size == best.table_size \
            and other.index_offset % JV_PAGE == 0 and other.index_offset >= JV_PAGE:
        first = other.index_offset // JV_PAGE
        usable = first + ap <= npages and (first + ap <= fs.area[0] or first >= fs.area[0] + ap)
        for i in range(tp):
            if not usable:
                break
            if first <= map[i] < first + ap:
                usable = False
        if usable:
            fs.area[1] = <uint32_t>first
    return 0


#: The id of a filler record: NUL bytes (allowed in ids), referenced by nothing.
cdef bytes _FILLER = bytes(JV_MAX_ID_BYTES)


cdef uint64_t fill_id_gaps(char *ids, uint64_t start, uint64_t end, list offsets):
    """Turn torn id records between ``start`` (the commit's ``ids_end``) and
    ``end`` (the replayed one) into filler records; return how many were written.

    A power loss can leave a later id record whole and an earlier one torn
    (their sectors reached the disk apart). Replay keeps the writes whose id
    records are whole and leaves out the others, but ``ids_end`` must cover
    the kept ones, so the torn records stay inside it, where every record
    must be whole: each run of them, up to the next record a replayed slot
    names (``offsets``), is rewritten as records with a NUL id.
    """
    cdef uint64_t off = start, gap, size, nxt, filled = 0
    cdef const jv_id_record *idr
    cdef const char *zeros = _FILLER
    targets = sorted(set(offsets))
    while off < end:
        idr = <const jv_id_record *>(ids + off)
        if (idr.length != 0 and idr.length <= JV_MAX_ID_BYTES
                and off + jv_id_record_size(idr.length) <= end
                and jv_crc32c(0, ids + off + 8, idr.length) == idr.crc):
            off += jv_id_record_size(idr.length)
            continue
        nxt = next((t for t in targets if t > off), end)
        gap = nxt - off
        while gap >= 16:
            # At most 8 + JV_MAX_ID_BYTES a record, never leaving less than 16.
            size = gap if gap <= 8 + JV_MAX_ID_BYTES else (
                8 + JV_MAX_ID_BYTES if gap - 8 - JV_MAX_ID_BYTES >= 16 else JV_MAX_ID_BYTES)
            off = jv_id_append(ids, off, zeros, <uint32_t>(size - 8))
            gap -= size
            filled += 1
        off += gap  # a gap under 16 bytes cannot hold a record (records are at least 16)
    return filled


cdef dict slot_problem_counts():
    return {"checksum": 0, "flags": 0, "sequence": 0, "id": 0, "torn": 0}


cdef object recover(jv_fileset *fs, str folder, object fallback):
    """Replay the writes after the newest commit onto it, then checkpoint clean."""
    cdef double started = time.perf_counter()
    cdef jv_status st
    cdef uint64_t g = fs.generation, S = fs.next_seq, i, h, pos
    cdef uint64_t committed_live = fs.table.live
    cdef uint32_t committed_hw = fs.high_water
    cdef uint64_t cap64 = min((fs.f[JV_FILE_VEC].size - JV_HEADER_PAGE) // fs.row_stride,
                              (fs.f[JV_FILE_SLOTS].size - JV_FILE_HEADER) // JV_SLOT_RECORD,
                              <uint64_t>JV_MAX_SLOTS)
    cdef uint64_t ids_size = fs.f[JV_FILE_IDS].size
    cdef const char *ids = fs.f[JV_FILE_IDS].map.base
    cdef uint32_t vbytes = fs.dimension * 4
    cdef jv_slot rec
    cdef const char *key
    cdef const jv_entry *e
    cdef int rc
    reasons = ["the last writer did not close the file set"]
    # 1. The committed state is the base: every entry must be sound.
    for i in range(fs.table.size):
        e = jv_entry_at(&fs.table, i)
        if e.flags != JV_ENTRY_EMPTY and jv_entry_check(&fs.table, e) != 0:
            raise corrupt(folder, JV_FILE_INDEX, f"entry {i} of the newest commit is damaged; a "
                          f"synced structure cannot be repaired: open the store read-only to "
                          f"export what is readable, or restore it from a backup")
    # 2. The slot records written after the commit, in sequence order.
    dropped = slot_problem_counts()
    post = []
    cdef uint64_t n_live_post = 0, max_seq = 0, max_slot = committed_hw, ids_end = fs.ids_end
    for i in range(cap64):
        memcpy(&rec, jv_fs_slot(fs, <uint32_t>i), sizeof(jv_slot))
        if jv_slot_is_blank(&rec):
            continue
        if jv_slot_crc(&rec) != rec.crc:
            dropped["checksum"] += 1
            continue
        if rec.flags != JV_SLOT_LIVE and rec.flags != JV_SLOT_DELETED:
            dropped["flags"] += 1
            continue
        if rec.sequence < S:
            continue  # history the commit already accounts for
        if rec.sequence >= JV_MAX_COUNTER:
            dropped["sequence"] += 1
            continue
        # Every whole record raises the next sequence, the ones left out
        # below too: a later write may append an id record where a left-out
        # record's id was torn, or fill its row, and at the next recovery the
        # stale record would then pass every check and name that id.
        max_seq = max(max_seq, rec.sequence)
        if jv_id_at(ids, ids_size, rec.id_offset, rec.id_length, &key) != 0 or \
                jv_crc32c(0, key, rec.id_length) != (<const jv_id_record *>(key - 8)).crc:
            dropped["id"] += 1
            continue
        if rec.flags == JV_SLOT_LIVE:
            if jv_crc32c(0, jv_fs_row(fs, <uint32_t>i), vbytes) != rec.vector_crc:
                dropped["torn"] += 1
                continue
            n_live_post += 1
            max_slot = max(max_slot, i + 1)
        post.append((rec.sequence, i))
        ids_end = max(ids_end, rec.id_offset + jv_id_record_size(rec.id_length))
    post.sort()
    cdef uint64_t filled_ids = 0
    if ids_end > fs.ids_end:
        filled_ids = fill_id_gaps(<char *>ids, fs.ids_end, ids_end,
                                  [jv_fs_slot(fs, <uint32_t>slot).id_offset for _, slot in post])
    # Id records past ids_end are of writes left out (or older debris): the
    # next store of a new id appends over them, and if a power loss then
    # kept its slot record but not its id record, the stale record (whole,
    # its CRC good) would give the write another id. Zeroed here, and made
    # durable by the clean checkpoint below, none is left to mistake.
    if ids_size > ids_end:
        memset(<char *>ids + ids_end, 0, ids_size - ids_end)
    # 3. A fresh table: the committed entries, then the replay.
    fs.capacity = <uint32_t>max(<uint64_t>fs.capacity, cap64)
    fs.high_water = <uint32_t>max_slot
    fs.ids_end = ids_end
    fs.table.ids_end = ids_end
    fs.table.slot_limit = max_slot
    cdef uint64_t tp = jv_table_pages(&fs.table)
    cdef uint32_t *committed_map = <uint32_t *>malloc(tp * sizeof(uint32_t) + 4)
    if committed_map == NULL:
        raise MemoryError()
    memcpy(committed_map, fs.table.map, tp * sizeof(uint32_t))
    cdef jv_table committed = fs.table
    committed.map = committed_map
    try:
        with nogil:
            rc = jv_fs_build_free(fs, NULL, &st)
            if rc == 0:
                rc = jv_fs_rehash(fs, n_live_post, &st)
        if rc:
            raise_status(folder, &st)
        applied = deleted = 0
        for _, slot in post:
            memcpy(&rec, jv_fs_slot(fs, <uint32_t>slot), sizeof(jv_slot))
            jv_id_at(ids, ids_size, rec.id_offset, rec.id_length, &key)
            h = jv_hash(key, rec.id_length) & fs.hash_mask
            rc = jv_table_find(&fs.table, h, key, rec.id_length, &pos)
            if rc < 0:
                raise corrupt(folder, JV_FILE_INDEX, f"replaying slot {slot} failed ({rc})")
            if rec.flags == JV_SLOT_LIVE:
                jv_table_put(&fs.table, pos, h, <uint32_t>slot, rec.id_offset, rec.id_length,
                             rec.vector_crc)
                applied += 1
            elif rc == JV_FOUND:
                jv_table_remove(&fs.table, pos)
                deleted += 1
        fs.next_seq = max(S, max_seq + 1)
        # 4. Free lists against the new table (what the commit named is
        # tagged with its generation), and slot records that disagree with
        # a live entry rewritten from it. (The index may have been remapped.)
        committed.base = fs.table.base
        with nogil:
            rc = jv_fs_build_free(fs, &committed, &st)
        if rc:
            raise_status(folder, &st)
        repaired = repair_slot_records(fs)
    finally:
        free(committed_map)
    fs.dirty = 1
    with nogil:
        rc = jv_fs_checkpoint(fs, JV_STATE_CLEAN, &st)
    if rc:
        raise_status(folder, &st)
    fs.dirty = 0
    report = {
        "recovered": True,
        "reasons": reasons,
        "generation": g,
        "fallback": fallback,
        "committed_vectors": committed_live,
        "replayed": applied,
        "replayed_deletes": deleted,
        "live": fs.table.live,
        "repaired_slot_records": repaired,
        "filled_id_records": filled_ids,
        "dropped": {k: v for k, v in dropped.items() if v},
        "seconds": time.perf_counter() - started,
    }
    return report


cdef uint64_t repair_slot_records(jv_fileset *fs) except? 0:
    """Rewrite the slot record of every live slot whose record disagrees with its entry.

    Only a record damaged after its commit can disagree (the entry, from a
    checked commit or the replay, is the authority); the rewrite gets a new
    sequence so that a later recovery replays it.
    """
    cdef uint64_t i, repaired = 0
    cdef const jv_entry *e
    cdef jv_slot *r
    cdef jv_slot fresh
    for i in range(fs.table.size):
        e = jv_entry_at(&fs.table, i)
        if e.flags != JV_ENTRY_LIVE:
            continue
        r = jv_fs_slot(fs, e.slot)
        if (jv_slot_crc(r) == r.crc and r.flags == JV_SLOT_LIVE and r.id_offset == e.id_offset
                and r.id_length == e.id_length and r.vector_crc == e.vector_crc):
            continue
        fresh.id_offset = e.id_offset
        fresh.id_length = e.id_length
        fresh.flags = JV_SLOT_LIVE
        fresh.sequence = fs.next_seq
        fs.next_seq += 1
        fresh.vector_crc = e.vector_crc
        jv_slot_seal(&fresh)
        memcpy(r, &fresh, sizeof(jv_slot))
        repaired += 1
    return repaired


# -- verify ----------------------------------------------------------------------


cdef list verify_fileset(jv_fileset *fs, str folder, jv_snapshot *snap):
    cdef const jv_table *t
    cdef const char *rows
    cdef uint32_t hw
    cdef uint64_t count, ids_end, i, live = 0, off, npages
    cdef const jv_entry *e
    cdef const jv_slot *r
    cdef const char *key
    cdef const jv_id_record *idr
    cdef const char *ids
    cdef jv_commit c
    cdef uint32_t vbytes = fs.dimension * 4
    problems = []
    names = [file_path(folder, w) for w in range(4)]
    for w in range(4):
        size = os.fstat(fs.f[w].fd).st_size
        if size < fs.f[w].size:
            problems.append(f"{names[w]}: file is {size} bytes, shorter than the "
                            f"{fs.f[w].size} mapped (truncated while open)")
            return problems
    if snap == NULL:
        t = &fs.table
        rows = fs.f[JV_FILE_VEC].map.base + JV_HEADER_PAGE
        hw = fs.high_water
        count = fs.table.live
        ids_end = fs.ids_end
    else:
        t = &snap.table
        rows = snap.maps[JV_FILE_VEC].base + JV_HEADER_PAGE
        hw = snap.commit.high_water
        count = snap.commit.vector_count
        ids_end = snap.commit.ids_end
    ids = t.ids
    page = pread_all(fs, JV_FILE_VEC, 0, JV_HEADER_PAGE)
    for offset, label in ((0, "A"), (JV_COMMIT_B_OFFSET, "B")):
        if len(page) < offset + sizeof(jv_commit):
            problems.append(f"{names[0]}: commit record {label} cannot be read")
            continue
        memcpy(&c, <const char *>page + <int>offset, sizeof(jv_commit))
        check = jv_commit_check(&c)
        if check == 1 or check == 2:
            problems.append(f"{names[0]}: commit record {label}: bad magic, version or "
                            f"checksum")
    for w, magic in ((JV_FILE_SLOTS, JV_MAGIC_SLOTS), (JV_FILE_INDEX, JV_MAGIC_INDEX),
                     (JV_FILE_IDS, JV_MAGIC_IDS)):
        raw = pread_all(fs, w, 0, JV_FILE_HEADER)
        if len(raw) < JV_FILE_HEADER or not jv_header_crc_ok(<const char *>raw) \
                or int.from_bytes(raw[0:4], "little") != magic \
                or int.from_bytes(raw[8:16], "little") != fs.set_id:
            problems.append(f"{names[w]}: static header damaged")
    npages = fs.f[JV_FILE_INDEX].size // JV_PAGE
    seen = set()
    for i in range(t.size // JV_PAGE_ENTRIES):
        if t.map[i] == 0 or t.map[i] >= npages or t.map[i] in seen:
            problems.append(f"{names[2]}: page map entry {i} names page {t.map[i]} "
                            f"(outside the file, the header, or twice)")
            return problems
        seen.add(t.map[i])
    for i in range(t.size):
        e = jv_entry_at(t, i)
        if e.flags == JV_ENTRY_EMPTY:
            continue
        if e.flags != JV_ENTRY_LIVE and e.flags != JV_ENTRY_TOMBSTONE:
            problems.append(f"{names[2]}: entry {i}: unknown flags {e.flags}")
            continue
        if jv_entry_crc(e) != e.crc:
            problems.append(f"{names[2]}: entry {i}: entry checksum mismatch")
            continue
        if e.flags == JV_ENTRY_TOMBSTONE:
            continue
        live += 1
        if e.slot >= hw:
            problems.append(f"{names[2]}: entry {i}: slot {e.slot} past high_water {hw}")
            continue
        if jv_id_at(ids, ids_end, e.id_offset, e.id_length, &key) != 0:
            problems.append(f"{names[2]}: entry {i}: id reference out of bounds")
            continue
        idr = <const jv_id_record *>(key - 8)
        if jv_crc32c(0, key, e.id_length) != idr.crc:
            problems.append(f"{names[3]}: id of entry {i}: id checksum mismatch")
        elif (jv_hash(key, e.id_length) & fs.hash_mask) != e.hash:
            problems.append(f"{names[2]}: entry {i}: hash differs from its id's")
        if jv_crc32c(0, rows + <uint64_t>e.slot * fs.row_stride, vbytes) != e.vector_crc:
            problems.append(f"{names[0]}: slot {e.slot}: vector checksum mismatch")
        if snap == NULL:
            r = jv_fs_slot(fs, e.slot)
            if jv_slot_crc(r) != r.crc:
                problems.append(f"{names[1]}: slot {e.slot}: record checksum mismatch")
            elif (r.flags != JV_SLOT_LIVE or r.id_offset != e.id_offset
                    or r.id_length != e.id_length or r.vector_crc != e.vector_crc):
                problems.append(f"{names[1]}: slot {e.slot}: record disagrees with index "
                                f"entry {i}")
    if live != count:
        problems.append(f"{names[2]}: {live} live entries, the count says {count}")
    if snap == NULL:
        for i in range(hw):
            r = jv_fs_slot(fs, <uint32_t>i)
            if jv_slot_is_blank(r):
                continue
            if jv_slot_crc(r) != r.crc:
                problems.append(f"{names[1]}: slot {i}: record checksum mismatch")
            elif r.flags > JV_SLOT_DELETED:
                problems.append(f"{names[1]}: slot {i}: unknown flags {r.flags}")
    off = JV_FILE_HEADER
    while off + 8 <= ids_end:
        idr = <const jv_id_record *>(ids + off)
        if idr.length == 0 or idr.length > JV_MAX_ID_BYTES or off + 8 + idr.length > ids_end:
            problems.append(f"{names[3]}: id record at {off}: bad length {idr.length}")
            break
        if jv_crc32c(0, ids + off + 8, idr.length) != idr.crc:
            problems.append(f"{names[3]}: id record at {off}: id checksum mismatch")
        off += jv_id_record_size(idr.length)
    return problems
