"""The layers of DESIGN.md point one way; this scan of imports and cimports enforces it.

errors <- _core <- backends <- public API (jadevec/__init__, _api, _validate) <- cli.
Plugins and jadevec.testing see only the public API, jadevec.backends.base and
jadevec.errors.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", re.MULTILINE)


def imported_jadevec_modules(path: Path) -> set[str]:
    names = set()
    for match in IMPORT.finditer(path.read_text(encoding="utf-8")):
        name = (match.group(1) or match.group(2)).rstrip(",")
        if name == "jadevec" or name.startswith("jadevec."):
            names.add(name)
    return names


def sources(folder: str, *patterns: str) -> list[Path]:
    base = ROOT / folder
    return sorted(p for pattern in patterns for p in base.rglob(pattern))


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


LAYERS = [
    # (folder, file patterns, modules it may import)
    ("jadevec/_core", ("*.py", "*.pyx", "*.pxd"), ("jadevec.errors", "jadevec._core")),
    ("jadevec/backends", ("*.py",), ("jadevec.errors", "jadevec._core", "jadevec.backends")),
    ("jadevec/testing", ("*.py",), ("jadevec", "jadevec.backends.base", "jadevec.errors",
                                     "jadevec.testing")),
    ("plugins", ("*.py",), ("jadevec", "jadevec.backends.base", "jadevec.errors",
                            "jadevec.testing")),
]


@pytest.mark.parametrize("folder,patterns,permitted", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_layer_imports_point_down(folder, patterns, permitted):
    offenders = []
    for path in sources(folder, *patterns):
        for name in imported_jadevec_modules(path):
            if not allowed(name, permitted) or (
                # "jadevec" alone is the public API; its private modules are not
                folder in ("jadevec/testing", "plugins")
                and name.startswith("jadevec.")
                and not allowed(name, permitted[1:])
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "imports that cross the layers upward:\n" + "\n".join(offenders)


def test_errors_module_imports_nothing_from_jadevec():
    assert imported_jadevec_modules(ROOT / "jadevec" / "errors.py") == set()
