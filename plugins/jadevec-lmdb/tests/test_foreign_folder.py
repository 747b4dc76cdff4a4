"""The LMDB backend makes a store only in a new or empty folder, or one that an
interrupted creation of its own left: opened for writing on another backend's
store or a user's files, it raises StoreNotFoundError naming what is there and
writes nothing (no lock file, no data file beside them)."""

from __future__ import annotations

import os
from pathlib import Path

import jadevec
import numpy as np
import pytest


def listing(folder: Path) -> list[tuple[str, list[str], list[str]]]:
    return sorted((root, sorted(dirs), sorted(files)) for root, dirs, files in os.walk(folder))


@pytest.mark.parametrize("maker,named", [("hybrid", "catalog.sqlite3"),
                                         ("mmap", "catalog.json")])
def test_another_backends_store_is_refused_and_left_alone(tmp_path, maker, named):
    folder = tmp_path / "store"
    with jadevec.open(folder, backend=maker) as store:
        store.create_database("docs", 4).store("a", np.ones(4, np.float32))
    before = listing(folder)
    with pytest.raises(jadevec.StoreNotFoundError, match=f"no lmdb store.*{named}"):
        jadevec.open(folder, backend="lmdb")
    assert listing(folder) == before
    with jadevec.open(folder, backend=maker, read_only=True) as store:
        assert store.get_database("docs").retrieve("a").tolist() == [1, 1, 1, 1]
        assert store.verify().ok


def test_a_folder_with_a_users_file_is_not_made_a_store(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(jadevec.StoreNotFoundError, match="holds other files \\(notes.txt\\)"):
        jadevec.open(folder, backend="lmdb")
    assert sorted(os.listdir(folder)) == ["notes.txt"]  # not even a lock file


@pytest.mark.parametrize("leftovers", [[], [".lock"], [".lock", "lock.mdb"]])
def test_an_empty_folder_or_our_own_leftovers_become_a_store(tmp_path, leftovers):
    folder = tmp_path / "store"
    folder.mkdir()
    for name in leftovers:
        (folder / name).write_bytes(b"")
    with jadevec.open(folder, backend="lmdb") as store:
        store.create_database("docs", 4)
    with jadevec.open(folder, backend="lmdb") as store:  # and it reopens as a store
        assert store.list_databases() == ["docs"]
