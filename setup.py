"""Build the compiled core of jadevec.

Every ``jadevec/_core/<name>.pyx`` becomes the extension ``jadevec._core.<name>``;
``EXTRA_SOURCES`` lists the hand-written C files each one links.

Nothing here targets the build machine's CPU: the baseline is plain x86-64 (or
the platform default elsewhere). The AVX2+FMA and AVX-512 kernels carry their
ISA in ``__attribute__((target(...)))`` on each function and are chosen at run
time, so one wheel runs on any CPU of its architecture.

``JADEVEC_DEBUG_BUILD=1`` builds a checked variant: bounds and wraparound
checks on, ``-O0 -g``; CI runs the test suite once more against it.

``JADEVEC_COVERAGE_BUILD=1`` builds a traced variant for measuring the line
coverage of the .pyx sources: Cython's ``linetrace`` directive with
``CYTHON_TRACE`` and ``CYTHON_TRACE_NOGIL``, so lines inside ``nogil`` blocks
are reported too. Tracing makes the kernels' loops many times slower while a
tracer is active, which is why it is not part of the checked build CI runs.
coverage.py reads it through the ``Cython.Coverage`` plugin, which needs the
generated .c file beside each module (an in-place build leaves it there);
docs/vector_persistence_architecture.md gives the commands.

Switching between variants regenerates the .c files: Cython by itself only
looks at timestamps, and would compile the old variant's C code again.
"""

import json
import os
import platform
import sys
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("JADEVEC_DEBUG_BUILD", "") not in ("", "0")
COVERAGE = os.environ.get("JADEVEC_COVERAGE_BUILD", "") not in ("", "0")
SRC = "jadevec/_core/src"

# C sources linked into each compiled module, beside its generated .c file.
# The C file set (src/jv_fileset.c and what it builds on), linked into each
# module that works on it: they pass a jv_fileset by pointer to one another.
FILESET = [
    f"{SRC}/jv_platform_posix.c",
    f"{SRC}/jv_mfile.c",
    f"{SRC}/jv_crc32c.c",
    f"{SRC}/jv_records.c",
    f"{SRC}/jv_index.c",
    f"{SRC}/jv_readers.c",
    f"{SRC}/jv_fileset.c",
]
EXTRA_SOURCES = {
    "kernels": [
        f"{SRC}/cpu_features.c",
        f"{SRC}/kernels_scalar.c",
        f"{SRC}/kernels_avx2.c",
        f"{SRC}/kernels_avx512.c",
    ],
    "mapped_file": [f"{SRC}/jv_platform_posix.c", f"{SRC}/jv_mfile.c"],
    "id_index": [],
    "fileset": FILESET,
    "vector_file": FILESET,
    "recovery": FILESET,
    "compaction": FILESET,
}
# Modules whose loops use prange (OpenMP) to spread work over every core.
OPENMP_MODULES = {"kernels"}


def openmp_flags():
    """Return (compile, link) flags for OpenMP, or empty lists where unsupported."""
    if os.environ.get("JADEVEC_NO_OPENMP"):
        return [], []
    if sys.platform.startswith("linux"):
        return ["-fopenmp"], ["-fopenmp"]
    return [], []  # Apple clang ships no OpenMP runtime; prange runs serially there


def compile_flags():
    flags = ["-Wall", "-Wno-unused-function", "-std=c11"]
    flags += ["-O0", "-g"] if DEBUG else ["-O3"]
    return flags


def define_macros():
    macros = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
    if COVERAGE:
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
        # coverage runs plugins only in its C tracer core, which hooks the
        # settrace calls; on Python 3.12+ Cython would otherwise report to
        # sys.monitoring instead, and that core never sees them.
        macros += [("CYTHON_USE_SYS_MONITORING", "0")]
    return macros


def generated_for_another_variant(ext):
    """Whether ext's existing .c file was generated with other flags or macros.

    Cython records each extension's build options in a JSON header of the .c
    file; the variant (optimised, checked, traced) shows in them.
    """
    c_file = os.path.splitext(ext.sources[0])[0] + ".c"
    try:
        with open(c_file, encoding="utf-8") as f:
            head = f.read(65536)
        recorded = json.loads(
            head.split("/* BEGIN: Cython Metadata", 1)[1].split("END: Cython Metadata */", 1)[0]
        )["distutils"]
    except (OSError, IndexError, KeyError, ValueError):
        return False  # no .c file yet (Cython generates it) or not one we can read
    macros = [list(macro) for macro in ext.define_macros]
    return (
        recorded.get("define_macros") != macros
        or recorded.get("extra_compile_args") != ext.extra_compile_args
    )


def extensions():
    omp_compile, omp_link = openmp_flags()
    # JADEVEC_ONLY=kernels,aligned builds just those modules (a developer convenience).
    only = {m for m in os.environ.get("JADEVEC_ONLY", "").split(",") if m}
    exts = []
    for pyx in sorted(glob("jadevec/_core/*.pyx")):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        extra_compile = compile_flags()
        extra_link = []
        if name in OPENMP_MODULES:
            extra_compile += omp_compile
            extra_link += omp_link
        exts.append(
            Extension(
                f"jadevec._core.{name}",
                [pyx, *EXTRA_SOURCES.get(name, [])],
                include_dirs=[np.get_include(), SRC],
                define_macros=define_macros(),
                extra_compile_args=extra_compile,
                extra_link_args=extra_link,
                depends=glob(f"{SRC}/*.h") + glob("jadevec/_core/*.pxd"),
            )
        )
    if not exts:
        # A wheel without its compiled core would install and then fail at import.
        sys.exit("setup.py: no jadevec/_core/*.pyx sources found; is this a complete sdist?")
    return exts


if platform.architecture()[0] != "64bit":
    sys.exit("jadevec needs a 64-bit Python: it maps files larger than 4 GiB.")

EXTENSIONS = extensions()
setup(
    ext_modules=cythonize(
        EXTENSIONS,
        language_level=3,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            "cdivision": not DEBUG,
            "embedsignature": True,
            "linetrace": COVERAGE,
        },
        force=DEBUG or COVERAGE or any(map(generated_for_another_variant, EXTENSIONS)),
    ),
)
