"""The layers point one way; a parse of every import and cimport enforces it.

errors <- _core <- backends <- public API (jadevec/__init__, _api, _validate) <- cli
(jadevec/cli, reached only through jadevec/__main__.py and the console script).
``jadevec.testing`` and the plugins see only the public API (the ``jadevec``
package's public names), ``jadevec.backends.base``, ``jadevec.errors`` and
``jadevec.testing``; ``from jadevec import _something`` is reaching around it.

Python files are parsed with :mod:`ast` (so an import inside a function, a
``try`` or a string continuation is seen, and text in a docstring is not);
Cython files (.pyx, .pxd), which ``ast`` cannot parse, by their
``import``/``cimport`` statements line by line.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+(\S+)\s+c?import\s+(.+)|c?import\s+(\S+))",
                           re.MULTILINE)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` for every import in a file; ``names`` for ``from x import names``."""
    text = path.read_text(encoding="utf-8")
    out: list[tuple[str, list[str]]] = []
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.Import):
                out.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((node.module, [alias.name for alias in node.names]))
        return out
    for match in CYTHON_IMPORT.finditer(text):
        if match.group(1):
            names = [n.strip(" ()").split(" as ")[0] for n in match.group(2).split(",")]
            out.append((match.group(1), [n for n in names if n]))
        else:
            out.append((match.group(3).rstrip(","), []))
    return out


def sources(folder: str, *patterns: str) -> list[Path]:
    base = ROOT / folder
    return sorted(p for pattern in patterns for p in base.rglob(pattern)
                  if "build" not in p.parts and ".venv" not in p.parts[len(ROOT.parts):])


def allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


LAYERS = [
    # (folder, file patterns, modules it may import, whether it sees only the public surface)
    ("jadevec/_core", ("*.py", "*.pyx", "*.pxd"), ("jadevec.errors", "jadevec._core"), False),
    ("jadevec/backends", ("*.py",), ("jadevec.errors", "jadevec._core", "jadevec.backends"),
     False),
    ("jadevec/testing", ("*.py",), ("jadevec", "jadevec.backends.base", "jadevec.errors",
                                     "jadevec.testing"), True),
    ("plugins", ("*.py",), ("jadevec", "jadevec.backends.base", "jadevec.errors",
                            "jadevec.testing"), True),
]


@pytest.mark.parametrize("folder,patterns,permitted,public_only", LAYERS,
                         ids=[layer[0] for layer in LAYERS])
def test_layer_imports_point_down(folder, patterns, permitted, public_only):
    offenders = []
    for path in sources(folder, *patterns):
        for module, names in imports(path):
            if module != "jadevec" and not module.startswith("jadevec."):
                continue
            where = f"{path.relative_to(ROOT)} imports {module}"
            if not allowed(module, permitted):
                offenders.append(where)
            elif public_only and module.startswith("jadevec.") and not allowed(
                    module, permitted[1:]):
                offenders.append(f"{where} (a private part of jadevec)")
            elif public_only and module == "jadevec":
                private = [n for n in names if n.startswith("_")]
                if private:
                    offenders.append(f"{where}: {', '.join(private)} (private names)")
    assert not offenders, "imports that cross the layers:\n" + "\n".join(offenders)


def test_the_parser_sees_what_a_regex_would_miss(tmp_path):
    """The check itself can fail: an import inside a function and a private name."""
    sample = tmp_path / "sample.py"
    sample.write_text("'''import jadevec.backends.hybrid'''\n"
                      "def f():\n    from jadevec import _api, open\n")
    assert imports(sample) == [("jadevec", ["_api", "open"])]


def test_errors_module_imports_nothing_from_jadevec():
    assert [m for m, _ in imports(ROOT / "jadevec" / "errors.py")
            if m == "jadevec" or m.startswith("jadevec.")] == []


def test_only_the_entry_point_imports_the_command_line():
    """The command line is the top layer: no library module may import it."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources("jadevec", "*.py", "*.pyx", "*.pxd")
        if "cli" not in path.relative_to(ROOT / "jadevec").parts
        and path != ROOT / "jadevec" / "__main__.py"
        for module, _ in imports(path)
        if module == "jadevec.cli" or module.startswith("jadevec.cli.")
    ]
    assert not offenders, "\n".join(offenders)
