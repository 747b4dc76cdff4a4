"""The public namespace is locked: adding or removing a public name is a decision."""

import subprocess
import sys

import jadevec
import jadevec.errors
import jadevec.testing

PUBLIC = {
    "__version__", "open", "Store", "Database", "available_backends", "simd_info",
    "install_signal_handlers",
    "JadevecError", "InvalidInputError", "InvalidNameError", "DimensionMismatchError",
    "DatabaseExistsError", "DatabaseNotFoundError", "VectorNotFoundError", "StoreClosedError",
    "StoreNotFoundError", "StoreLockedError", "ReadOnlyError", "CorruptionError",
    "UnsupportedVersionError", "StorageFullError", "StoreFailedError", "UnsupportedError",
    "UnknownOptionError", "BackendNotFoundError", "BackendLoadError", "SimdUnavailableError",
}


def test_all_is_locked():
    assert set(jadevec.__all__) == PUBLIC
    assert len(jadevec.__all__) == len(PUBLIC)
    for name in PUBLIC:
        assert hasattr(jadevec, name), name


def test_no_other_public_names():
    # Submodules (errors, backends, testing, cli) become attributes when imported; nothing else may.
    extra = {
        name for name in vars(jadevec)
        if not name.startswith("_") and name not in PUBLIC
    } - {"errors", "backends", "testing", "demo", "cli"}
    assert extra == set()


def test_every_error_is_exported_and_typed():
    for name in jadevec.errors.__all__:
        cls = getattr(jadevec, name)
        assert cls is getattr(jadevec.errors, name)
        assert issubclass(cls, jadevec.JadevecError)
        assert cls.__doc__


def test_builtin_bases():
    assert issubclass(jadevec.InvalidInputError, ValueError)
    assert issubclass(jadevec.InvalidInputError, TypeError)
    assert issubclass(jadevec.DatabaseNotFoundError, KeyError)
    assert issubclass(jadevec.VectorNotFoundError, KeyError)
    assert issubclass(jadevec.DatabaseExistsError, ValueError)
    assert issubclass(jadevec.StoreClosedError, ValueError)
    assert issubclass(jadevec.StoreNotFoundError, FileNotFoundError)
    assert issubclass(jadevec.StoreLockedError, OSError)
    assert issubclass(jadevec.ReadOnlyError, PermissionError)
    assert issubclass(jadevec.CorruptionError, OSError)
    assert issubclass(jadevec.UnsupportedError, NotImplementedError)
    assert issubclass(jadevec.UnknownOptionError, TypeError)


def test_public_names_are_documented():
    for name in PUBLIC - {"__version__"}:
        assert getattr(jadevec, name).__doc__, name
    for name in ("create_database", "get_database", "list_databases", "delete_database",
                 "flush", "sync", "close", "verify", "backup"):
        assert getattr(jadevec.Store, name).__doc__, name
    for name in ("store", "retrieve", "update", "delete", "batch_store", "batch_retrieve",
                 "list_vectors", "get_metadata", "search", "compact"):
        assert getattr(jadevec.Database, name).__doc__, name


def test_testing_namespace():
    assert jadevec.testing.__all__ == ["BackendTests", "ChildOutcome", "ForkedChild",
                                       "build_shim", "file_states", "report_counts",
                                       "run_fault_injection",
                                       "run_in_child", "run_power_loss", "stress_cycles",
                                       "torture_scale"]


def test_import_loads_no_backend_and_no_compiled_module():
    code = (
        "import sys, jadevec\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('jadevec'))\n"
        "print(' '.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    for concrete in ("jadevec.backends.memory", "jadevec.backends.mmap",
                     "jadevec.backends.hybrid", "jadevec._core.kernels"):
        assert concrete not in loaded
    assert "jadevec" in loaded


def test_simd_info_reports_the_kernel():
    info = jadevec.simd_info()
    assert isinstance(info, dict) and info
