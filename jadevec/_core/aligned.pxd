# Aligned allocation: the owner of every vector buffer jadevec keeps in RAM.

cdef class AlignedBuffer:
    cdef void* _raw          # what malloc/calloc returned; freed once, in __dealloc__
    cdef char* _data         # _raw rounded up to the alignment
    cdef Py_ssize_t _nbytes
    cdef Py_ssize_t _alignment
    cdef Py_ssize_t _exports  # live buffer-protocol views
    cdef Py_ssize_t _shape[1]
    cdef Py_ssize_t _strides[1]
