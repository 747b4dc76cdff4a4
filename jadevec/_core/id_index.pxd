from jadevec._core._types cimport uint32_t


# The id's UTF-8 bytes (borrowed from the str object) after checking that it
# is a str of 1..1024 bytes; raises InvalidInputError naming `argument`, or
# `argument[index]` when index >= 0.
cdef int utf8_id(object vector_id, const char **data, uint32_t *length,
                 str argument, Py_ssize_t index=*) except -1
