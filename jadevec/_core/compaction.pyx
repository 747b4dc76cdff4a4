"""Compaction: copy the live vectors of a file set into a fresh one.

``VectorFile.compact_into`` is this module's :func:`compact_into`. The new
set gets capacity = live count and fresh sequence numbers, and is synced and
closed before the source is closed; the caller swaps the folders
(docs/vector_file_format.md, "Compaction").

Thread rules: the caller holds the source's writer lock from the first read
to its close, so no write can slip in between the copy and the close.
"""

from jadevec._core._types cimport float32_t, uint32_t, uint64_t
from jadevec._core.layout cimport (
    JV_ENTRY_LIVE,
    JV_SLOT_LIVE,
    jv_crc32c,
    jv_entry,
    jv_entry_crc,
    jv_hash,
    jv_id_record,
    jv_id_record_size,
    jv_key_of_slot,
    jv_slot,
    jv_slot_crc,
)
from jadevec._core.vector_file cimport (
    FILE_IDS,
    FILE_INDEX,
    FILE_SLOTS,
    FILE_VEC,
    ST_CORRUPT,
    ST_OS,
    Status,
    VectorFile,
    fail,
    raise_status,
)

import numpy as np

__all__ = ["compact_into"]


def compact_into(VectorFile vf, dest):
    """Write the live vectors of ``vf`` as a new, clean, synced file set in
    ``dest``, then close ``vf``. The caller holds ``vf``'s writer lock.
    """
    cdef VectorFile new = None
    cdef uint64_t i, n = 0, id_bytes = 0, mask = vf.hash_mask
    cdef const char *key
    cdef uint32_t klen
    cdef uint32_t[::1] order
    cdef Status st
    cdef int rc = 0
    cdef const jv_entry *e
    cdef const jv_slot *rec
    cdef uint64_t live = 0
    try:
        # Every entry is checked before its slot is used (the table came from
        # disk): a damaged file is refused rather than copied, so compaction
        # never turns damage into a fresh, valid-looking file set.
        for i in range(vf.table.size):
            if vf.table.entries[i].flags == JV_ENTRY_LIVE:
                live += 1
        slots = np.empty(live, dtype=np.uint32)
        order = slots
        for i in range(vf.table.size):
            e = &vf.table.entries[i]
            if e.flags != JV_ENTRY_LIVE:
                continue
            if jv_entry_crc(e) != e.crc:
                raise vf.corrupt(FILE_INDEX, f"entry {i}: entry checksum mismatch; "
                                 f"compaction refused (run verify)")
            if jv_key_of_slot(&vf.keys, e.slot, &key, &klen) != 0:
                raise vf.corrupt(FILE_SLOTS, f"slot {e.slot} of index entry {i}: id "
                                 f"reference out of bounds; compaction refused")
            if jv_crc32c(0, key, klen) != (<const jv_id_record *>(key - 8)).crc:
                raise vf.corrupt(FILE_IDS, f"id of slot {e.slot}: id checksum mismatch; "
                                 f"compaction refused (run verify)")
            rec = vf.slot_rec(e.slot)
            if jv_slot_crc(rec) != rec.crc or rec.flags != JV_SLOT_LIVE:
                raise vf.corrupt(FILE_SLOTS, f"slot {e.slot}: record checksum or flags "
                                 f"bad; compaction refused (run verify)")
            if jv_crc32c(0, vf.row(e.slot), vf.dimension * 4) != e.vector_crc:
                raise vf.corrupt(FILE_VEC, f"slot {e.slot}: vector checksum mismatch; "
                                 f"compaction refused (run verify)")
            order[n] = e.slot
            n += 1
            id_bytes += jv_id_record_size(klen)
        slots = np.sort(slots[:n])
        order = slots
        new = VectorFile.create(dest, vf.dimension, capacity=n, hash_mask=vf.hash_mask)
        with nogil:
            rc = new.begin_write(&st)
            if rc == 0:
                rc = new.reserve(n, id_bytes, &st)
            for i in range(n):
                if rc < 0:
                    break
                if jv_key_of_slot(&vf.keys, order[i], &key, &klen) != 0:
                    rc = fail(&st, ST_CORRUPT, FILE_SLOTS,
                              "id reference out of bounds (slot)", order[i])
                    break
                rc = new.put_locked(jv_hash(key, klen) & mask, key, klen,
                                    <const float32_t *>vf.row(order[i]), False, &st)
        if rc < 0:
            raise_status(new if st.code == ST_OS else vf, &st)
        new.close()
        with nogil:
            rc = vf.close_locked(&st)
        if rc:
            raise_status(vf, &st)
    except BaseException:
        if new is not None:
            new.close()
        raise
