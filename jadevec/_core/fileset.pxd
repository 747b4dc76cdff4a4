# The Cython helpers over the C file set (jv_fileset.h) that vector_file,
# recovery and compaction share: the one place a status becomes an exception,
# and atomic creation.
from jadevec._core._types cimport uint32_t, uint64_t
from jadevec._core.layout cimport jv_fileset, jv_status


# Turn a failed status into the typed exception naming the file and field.
cdef int raise_status(str folder, const jv_status *st) except -1

# A new, closed file set (free it with jv_fs_free).
cdef jv_fileset *new_fileset() except NULL

# Create a file set at `path` atomically (built in `.<name>.creating`, synced,
# renamed into place, parent synced); `fs` is then open for writing.
cdef int create_at(jv_fileset *fs, str path, uint32_t dimension, uint32_t capacity,
                   uint64_t first_generation) except -1
