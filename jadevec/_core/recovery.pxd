# Open-time checks, recovery and verification of a vector file set.
from jadevec._core.layout cimport jv_fileset, jv_snapshot


# Check the files mapped by jv_fs_map_files and make the set usable: a clean
# or read-only open reads the newest commit; a writer that finds it dirty
# recovers. Returns the recovery report (a dict) or None.
cdef object load(jv_fileset *fs, str folder)

# Every problem found (an empty list: sound). `snap` NULL: the writer's
# working state (the read lock held); else that snapshot.
cdef list verify_fileset(jv_fileset *fs, str folder, jv_snapshot *snap)
