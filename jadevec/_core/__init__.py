"""Compiled mechanisms of jadevec. Private.

Aligned buffers, mapped files, the vector file format, the id index and the
SIMD kernels: mechanism without policy (no databases, catalogs or intervals).
"""
