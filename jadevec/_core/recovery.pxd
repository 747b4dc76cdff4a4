# Open-time checks, recovery and verify of a vector file set (recovery.pyx).
# VectorFile reaches these through the module's Python face (load, verify);
# the C-level steps are declared here for any module that needs them.
from jadevec._core.layout cimport jv_commit
from jadevec._core.vector_file cimport VectorFile


cdef list load_headers(VectorFile vf, jv_commit best)
cdef int count_table(VectorFile vf) except -1
cdef int recover(VectorFile vf, list reasons) except -1
cdef int check(VectorFile vf, list problems) except -1
