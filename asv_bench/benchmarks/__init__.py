"""asv benchmarks of jadevec, grouped by what a user does.

``core_*`` modules time ``jadevec._core`` alone; the others time user tasks
beside a baseline (numpy, and FAISS or usearch when installed) in the same
class, so each run compares them under the same load.
"""
