"""Backends are found through the jadevec.backends entry points; broken or
shadowing plugins are reported by name without breaking the others.

Plugins are faked with dist-info folders on sys.path, which importlib.metadata
reads exactly like installed distributions."""

import importlib
import importlib.metadata
import sys
import textwrap
import warnings

import pytest

import jadevec
from jadevec.backends import registry
from jadevec.backends.base import Backend
from jadevec.errors import BackendLoadError, BackendNotFoundError

MODULES = ("fake_backend_mod", "broken_backend_mod")


def write_dist(root, name, entry_points):
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[jadevec.backends]\n" + entry_points)


@pytest.fixture
def fresh_registry():
    registry._reset()
    yield
    registry._reset()
    for module in MODULES:
        sys.modules.pop(module, None)


@pytest.fixture
def plugins(tmp_path, monkeypatch, fresh_registry):
    (tmp_path / "fake_backend_mod.py").write_text(textwrap.dedent("""
        from jadevec.backends.memory import MemoryBackend

        class FakeBackend(MemoryBackend):
            '''A memory backend under another name.'''

        NOT_A_CLASS = 42
    """))
    (tmp_path / "broken_backend_mod.py").write_text("raise RuntimeError('boom at import')\n")
    write_dist(tmp_path, "fakeplugin", textwrap.dedent("""
        fake = fake_backend_mod:FakeBackend
        broken = broken_backend_mod:Nope
        notabackend = fake_backend_mod:NOT_A_CLASS
        missingmodule = no_such_module_anywhere:Backend
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def test_builtins_are_registered(fresh_registry):
    assert {"memory", "mmap", "hybrid"} <= set(jadevec.available_backends())
    assert jadevec.available_backends() == sorted(jadevec.available_backends())
    assert registry.load_backend("memory").__name__ == "MemoryBackend"


def test_builtins_come_from_jadevec_entry_points(fresh_registry):
    declared = {ep.name: ep.value
                for ep in importlib.metadata.entry_points(group="jadevec.backends")
                if ep.dist is not None and ep.dist.name == "jadevec"}
    if not declared:
        pytest.skip("jadevec is not installed (pip install -e .); the fallback table is used")
    assert declared == registry.BUILTIN_BACKENDS


def test_plugins_are_listed_without_importing_them(plugins):
    names = jadevec.available_backends()
    assert {"fake", "broken", "notabackend", "missingmodule", "memory"} <= set(names)
    assert "fake_backend_mod" not in sys.modules and "broken_backend_mod" not in sys.modules


def test_plugin_loads_and_opens(plugins):
    cls = registry.load_backend("fake")
    assert issubclass(cls, Backend) and cls.__name__ == "FakeBackend"
    assert registry.load_backend("fake") is cls  # cached
    with jadevec.open(backend="fake") as store:
        store.create_database("a", 2).store("x", [1.0, 2.0])
        assert store.backend == "fake"


def test_broken_plugin_is_reported_by_name_and_breaks_nothing(plugins):
    with pytest.raises(BackendLoadError) as info:
        jadevec.open(backend="broken")
    message = str(info.value)
    assert "'broken'" in message and "boom at import" in message and "fakeplugin" in message
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(BackendLoadError, match="missingmodule.*ModuleNotFoundError"):
        registry.load_backend("missingmodule")
    # The others still work, before and after.
    with jadevec.open(backend="fake") as store:
        store.create_database("a", 2)
    with jadevec.open(backend="memory") as store:
        store.create_database("a", 2)
    with pytest.raises(BackendLoadError):  # failures are not cached as successes
        registry.load_backend("broken")


def test_entry_point_that_is_not_a_backend(plugins):
    with pytest.raises(BackendLoadError, match="notabackend.*not a subclass"):
        registry.load_backend("notabackend")


def test_unknown_name_lists_the_available_ones(plugins):
    with pytest.raises(BackendNotFoundError) as info:
        jadevec.open(backend="nosuch")
    message = str(info.value)
    assert "'nosuch'" in message
    for name in ("fake", "hybrid", "memory", "mmap"):
        assert name in message
    assert isinstance(info.value, LookupError)


def test_a_plugin_cannot_shadow_a_builtin(tmp_path, monkeypatch, fresh_registry):
    (tmp_path / "fake_backend_mod.py").write_text(
        "from jadevec.backends.memory import MemoryBackend\n"
        "class FakeBackend(MemoryBackend):\n    pass\n"
    )
    write_dist(tmp_path, "shadowing", "memory = fake_backend_mod:FakeBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.warns(RuntimeWarning, match="'memory' is a built-in"):
        names = jadevec.available_backends()
    assert names.count("memory") == 1
    assert registry.load_backend("memory").__module__ == "jadevec.backends.memory"


def test_two_plugins_claiming_one_name(tmp_path, monkeypatch, fresh_registry):
    (tmp_path / "fake_backend_mod.py").write_text(
        "from jadevec.backends.memory import MemoryBackend\n"
        "class A(MemoryBackend):\n    pass\n"
        "class B(MemoryBackend):\n    pass\n"
    )
    write_dist(tmp_path, "aplugin", "same = fake_backend_mod:A\n")
    write_dist(tmp_path, "bplugin", "same = fake_backend_mod:B\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.warns(RuntimeWarning, match="registered twice"):
        jadevec.available_backends()
    assert registry.load_backend("same").__name__ == "A"


def test_builtins_found_without_installed_metadata(monkeypatch, fresh_registry):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jadevec.available_backends() == ["hybrid", "memory", "mmap"]
    assert registry.load_backend("memory").__name__ == "MemoryBackend"
