# Compaction of a vector file set (compaction.pyx). Its one entry point,
# compact_into, is a Python-level function called by VectorFile.compact_into
# with the source's writer lock held; nothing here is cimported today.
from jadevec._core.vector_file cimport VectorFile
