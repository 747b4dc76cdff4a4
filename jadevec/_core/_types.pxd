# Fixed-width C types shared by every compiled module of jadevec._core.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

ctypedef float float32_t
ctypedef Py_ssize_t intp_t
