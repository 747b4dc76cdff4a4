# Compaction: the live vectors of a file set copied into a fresh one.
from jadevec._core.layout cimport jv_fileset


# Write the live vectors of `src` (its writer lock held by the caller) as a
# new, clean, synced file set at `dest`, then close `src`.
cdef int compact_into(jv_fileset *src, str folder, str dest) except -1
