"""Compaction: copy the live vectors of a file set into a fresh one.

``VectorFile.compact_into`` is this module's :func:`compact_into`. The new
set gets capacity = live count and fresh sequence numbers, and is synced and
closed before the source is closed; the caller swaps the folders
(docs/vector_file_format.md, "Compaction").

Thread rules: the caller holds the source's writer lock from the first read
to its close, so no write can slip in between the copy and the close.
"""

from jadevec._core._types cimport float32_t, uint32_t, uint64_t
from jadevec._core.layout cimport JV_ENTRY_LIVE, jv_hash, jv_id_record_size, jv_key_of_slot
from jadevec._core.vector_file cimport (
    FILE_SLOTS,
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
    try:
        slots = np.empty(vf.table.live, dtype=np.uint32)
        order = slots
        for i in range(vf.table.size):
            if vf.table.entries[i].flags == JV_ENTRY_LIVE and n < vf.table.live:
                order[n] = vf.table.entries[i].slot
                n += 1
                id_bytes += jv_id_record_size(vf.slot_rec(order[n - 1]).id_length)
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
