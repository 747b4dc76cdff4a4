"""Read a persistent store's vectors from its files, behind the backend's own read path.

The conformance suite's ``raw_vector`` hook for ``mmap`` and ``hybrid``: the
database's folder comes from the catalog as stored on disk (the SQLite file,
or ``catalog.json`` and its journal), and the vector from the folder's files
through ``format_reader``, which follows docs/vector_file_format.md and uses
no jadevec code. Only the newest commit is on record there, so the store is
synced first (through the public API).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from format_reader import FileSet


def database_folder(root: Path, name: str) -> str | None:
    """The folder id the catalog on disk gives database ``name`` (ignoring case)."""
    if (root / "catalog.sqlite3").exists():
        uri = (root / "catalog.sqlite3").resolve().as_uri() + "?mode=ro"
        with sqlite3.connect(uri, uri=True) as db:
            row = db.execute("SELECT folder FROM databases WHERE name_lower = ? AND state = "
                             "'live'", (name.lower(),)).fetchone()
        return None if row is None else row[0]
    doc = json.loads((root / "catalog.json").read_text())
    entries = {key: d["folder"] for key, d in doc["databases"].items()}
    journal = root / "catalog.log"
    if journal.exists():
        for line in journal.read_text().splitlines():
            seq, change, value = json.loads(line)
            if seq <= doc["sequence"]:
                continue
            if change == "create":
                entries[value["name"].lower()] = value["folder"]
            elif change == "delete":
                entries = {k: f for k, f in entries.items() if f != value}
    return entries.get(name.lower())


def raw_vector(store, database: str, vector_id: str) -> np.ndarray | None:
    """The vector as the newest commit of the database's files holds it."""
    store.sync()
    root = Path(store.path)
    folder = database_folder(root, database)
    if folder is None:
        return None
    return FileSet(root / "vectors" / folder).vectors().get(vector_id)
