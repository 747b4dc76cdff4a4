"""Compaction: copy the live vectors of a file set into a fresh one.

``VectorFile.compact_into`` calls :func:`compact_into` with the source's
writer lock held from the first read to its close, so no write can slip in
between the copy and the close. The new set gets capacity = live count,
fresh sequence numbers and generations that continue the source's (so
anything stamped with a generation keeps ordering across the swap); it is
synced and closed before the source is closed. The caller swaps the folders
(docs/vector_file_format.md, "Compaction").

Every live entry is checked before its slot is used (the table came from
disk): a damaged file set is refused rather than copied, so compaction never
turns damage into a fresh, valid-looking file set.
"""

from jadevec._core._types cimport uint32_t, uint64_t
from jadevec._core.fileset cimport create_at, new_fileset, raise_status
from jadevec._core.layout cimport (
    JV_ENTRY_EMPTY,
    JV_ENTRY_LIVE,
    JV_FILE_IDS,
    JV_FILE_INDEX,
    JV_FILE_SLOTS,
    JV_FILE_VEC,
    JV_SLOT_LIVE,
    jv_crc32c,
    jv_entry,
    jv_entry_at,
    jv_entry_check,
    jv_fileset,
    jv_fs_begin_write,
    jv_fs_close,
    jv_fs_free,
    jv_fs_put,
    jv_fs_reserve,
    jv_fs_row,
    jv_fs_slot,
    jv_hash,
    jv_id_at,
    jv_id_record,
    jv_id_record_size,
    jv_slot,
    jv_slot_crc,
    jv_status,
)

import os

import numpy as np

from jadevec.errors import CorruptionError

__all__ = []

_NAMES = ("vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid")


cdef object refused(str folder, int which, str message):
    return CorruptionError(f"{os.path.join(folder, _NAMES[which])}: {message}; compaction "
                           f"refused (run verify)")


cdef int compact_into(jv_fileset *src, str folder, str dest) except -1:
    cdef uint64_t i, n = 0, id_bytes = 0
    cdef const jv_entry *e
    cdef const jv_slot *rec
    cdef const char *key
    cdef uint32_t vbytes = src.dimension * 4
    cdef jv_status st
    cdef int rc = 0
    cdef jv_fileset *new = NULL
    cdef uint32_t[::1] order
    cdef uint64_t[::1] where
    live = np.empty(src.table.live, dtype=np.uint32)
    positions = np.empty(src.table.live, dtype=np.uint64)
    order = live
    where = positions
    for i in range(src.table.size):
        e = jv_entry_at(&src.table, i)
        if e.flags == JV_ENTRY_EMPTY:
            continue
        if jv_entry_check(&src.table, e) != 0:
            raise refused(folder, JV_FILE_INDEX, f"entry {i}: checksum, flags, slot or id "
                          f"reference bad")
        if e.flags != JV_ENTRY_LIVE:
            continue
        jv_id_at(src.table.ids, src.table.ids_end, e.id_offset, e.id_length, &key)
        if jv_crc32c(0, key, e.id_length) != (<const jv_id_record *>(key - 8)).crc:
            raise refused(folder, JV_FILE_IDS, f"id of entry {i}: id checksum mismatch")
        # The copy files the entry under its stored hash: a wrong one would
        # make the id unfindable in the new set.
        if jv_hash(key, e.id_length) & src.hash_mask != e.hash:
            raise refused(folder, JV_FILE_INDEX, f"entry {i}: stored hash is not its id's")
        rec = jv_fs_slot(src, e.slot)
        if (jv_slot_crc(rec) != rec.crc or rec.flags != JV_SLOT_LIVE
                or rec.id_offset != e.id_offset or rec.vector_crc != e.vector_crc):
            raise refused(folder, JV_FILE_SLOTS, f"slot {e.slot}: record checksum, flags or "
                          f"references disagree with its index entry")
        if jv_crc32c(0, jv_fs_row(src, e.slot), vbytes) != e.vector_crc:
            raise refused(folder, JV_FILE_VEC, f"slot {e.slot}: vector checksum mismatch")
        if n == src.table.live:
            raise refused(folder, JV_FILE_INDEX, "more live entries than the count says")
        order[n] = e.slot
        where[n] = i
        n += 1
        id_bytes += jv_id_record_size(e.id_length)
    # Copy in slot order: the new file's rows keep the old relative order.
    by_slot = np.argsort(live[:n], kind="stable")
    cdef uint64_t[::1] pick = positions[:n][by_slot].astype(np.uint64)
    new = new_fileset()
    new.hash_mask = src.hash_mask
    try:
        create_at(new, dest, src.dimension, <uint32_t>n, src.generation + 2)
        with nogil:
            rc = jv_fs_begin_write(new, &st)
            if rc == 0:
                rc = jv_fs_reserve(new, n, id_bytes, &st)
            i = 0
            while rc == 0 and i < n:
                e = jv_entry_at(&src.table, pick[i])
                jv_id_at(src.table.ids, src.table.ids_end, e.id_offset, e.id_length, &key)
                rc = jv_fs_put(new, e.hash, key, e.id_length,
                               <const float *>jv_fs_row(src, e.slot), False, &st)
                i += 1
        if rc < 0:
            raise_status(dest, &st)
        with nogil:
            rc = jv_fs_close(new, 0, &st)
        if rc:
            raise_status(dest, &st)
        with nogil:
            rc = jv_fs_close(src, 0, &st)
        if rc:
            raise_status(folder, &st)
    except BaseException:
        new.failed = 1  # a half-copied set must not be closed as clean
        raise
    finally:
        jv_fs_free(new, 0)
    return 0
