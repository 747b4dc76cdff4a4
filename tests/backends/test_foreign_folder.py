"""A store is made only in a new or empty folder, or one that an interrupted
creation of the same backend left: never beside other files or another
backend's store."""

import os

import numpy as np
import pytest

import jadevec


def listing(folder):
    return sorted((root, sorted(dirs), sorted(files)) for root, dirs, files in os.walk(folder))


@pytest.mark.parametrize("backend", ["hybrid", "mmap"])
def test_a_folder_with_other_files_is_not_made_a_store(tmp_path, backend):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(jadevec.StoreNotFoundError, match="holds other files \\(notes.txt\\)"):
        jadevec.open(folder, backend=backend)
    assert sorted(os.listdir(folder)) == ["notes.txt"]  # not even a lock file


@pytest.mark.parametrize("maker,opener", [("mmap", "hybrid"), ("hybrid", "mmap"),
                                          ("lmdb", "hybrid"), ("lmdb", "mmap")])
def test_a_store_of_another_backend_is_refused_and_left_alone(tmp_path, maker, opener):
    if maker not in jadevec.available_backends():
        pytest.skip(f"the {maker} backend is not installed")
    folder = tmp_path / "store"
    with jadevec.open(folder, backend=maker) as store:
        store.create_database("docs", 4).store("a", np.ones(4, np.float32))
    before = listing(folder)
    with pytest.raises(jadevec.StoreNotFoundError, match=f"no {opener} store"):
        jadevec.open(folder, backend=opener)
    assert listing(folder) == before
    with jadevec.open(folder, backend=maker, read_only=True) as store:
        assert store.get_database("docs").retrieve("a").tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("backend,leftovers", [
    ("hybrid", [".lock", "vectors/"]),
    ("mmap", [".lock", "metadata/", "vectors/"]),
    ("hybrid", []),
])
def test_an_empty_folder_or_our_own_leftovers_become_a_store(tmp_path, backend, leftovers):
    folder = tmp_path / "store"
    folder.mkdir()
    for name in leftovers:
        if name.endswith("/"):
            (folder / name).mkdir()
        else:
            (folder / name).write_bytes(b"")
    with jadevec.open(folder, backend=backend) as store:
        store.create_database("docs", 4)
    with jadevec.open(folder, backend=backend, read_only=True) as store:
        assert store.list_databases() == ["docs"]
