"""After ``sync()`` every file and folder of a new store has a durable name.

A file's ``fsync`` makes its bytes durable, not its name: the name is
durable once its directory is synced. The file-system shim records each
directory's entries at its ``fsync``; a writer makes a new store, a database
and a vector, calls ``sync()`` and stops dead (``os._exit``, no close). Every
entry then in the store's folders must be in its directory's durable
listing, or a power loss could take it (the whole catalog journal or the
vectors folder, and with them every database).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jadevec.testing._faultfs import build_shim, shim_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux")

WRITER = textwrap.dedent("""
    import json, os, sys
    import jadevec
    path = sys.argv[1]
    store = jadevec.open(path, backend=sys.argv[2], flush_interval=0)
    db = store.create_database("docs", 4, "l2")
    db.store("a", [1.0, 2.0, 3.0, 4.0], {"t": 1})
    store.sync()
    tree = {}
    for folder, dirs, files in os.walk(path):
        st = os.stat(folder)
        tree["%x_%x" % (st.st_dev, st.st_ino)] = [folder, sorted(dirs + files)]
    print(json.dumps(tree), flush=True)
    os._exit(0)
""")


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_every_name_is_durable_after_sync(backend: str, tmp_path: Path) -> None:
    try:
        shim = build_shim()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    store, images = tmp_path / "store", tmp_path / "images"
    store.mkdir()
    images.mkdir()
    done = subprocess.run([sys.executable, "-c", WRITER, str(store), backend],
                          env=shim_env(shim, store, images=images),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    tree = json.loads(done.stdout.strip().splitlines()[-1])
    missing = []
    for key, (folder, names) in tree.items():
        listing = images / f"d_{key}"
        durable = set()
        if listing.exists():
            durable = {line.split(" ", 2)[2] for line in listing.read_text().splitlines()}
        missing += [os.path.join(folder, name) for name in names if name not in durable]
    assert not missing, f"names not durable after sync(): {missing}"
