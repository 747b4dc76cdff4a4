# VectorFile: the Python face of one vector file set (the C unit jv_fileset).
from jadevec._core.layout cimport jv_fileset


cdef class VectorFile:
    cdef jv_fileset *fs
    cdef readonly str path
    cdef object _report
    cdef int fork_epoch
    cdef object _checkpoint_lock

    cdef int check_usable(self) except -1
    cdef int _put(self, object vector_id, object values, bint must_exist) except -1
