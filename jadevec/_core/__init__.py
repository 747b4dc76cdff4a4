"""Compiled mechanisms of jadevec: aligned buffers, mapped files, the vector file, the id index and SIMD kernels. Private."""
