"""What the ``mmap`` and ``hybrid`` catalogs share: entries, states, the protocol. Private.

A persistent store keeps its databases' vectors in ``<root>/vectors/<folder>/``
(one file set per database) and everything else in a *catalog*: the list of
databases, a clean flag, and per-vector metadata records. ``mmap`` keeps its
catalog in a manifest with a journal and JSON-lines logs, ``hybrid`` in one
SQLite file; both implement :class:`Catalog`.

The folder of a database is a generated id (``db-`` and 12 hex digits),
chosen at creation and never derived from its name, so names that a file
system would fold or mangle are safe and a re-created name gets a new folder.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jadevec.backends._pairing import Record
from jadevec.errors import StorageFullError

__all__ = ["CREATING", "DELETING", "LIVE", "VECTORS_DIR", "Catalog", "CatalogEntry",
           "folder_of", "fsync_dir", "new_folder_id"]

#: Folder of the vector file sets inside a store directory.
VECTORS_DIR = "vectors"

# Catalog states of a database (the intents of the lifecycle).
CREATING, LIVE, DELETING = "creating", "live", "deleting"


@dataclass(frozen=True)
class CatalogEntry:
    """A database as the catalog records it; ``folder`` is its on-disk id."""

    name: str
    dimension: int
    metric: str
    folder: str


class Catalog(Protocol):
    """Where a backend keeps its databases, its clean flag and its metadata.

    Thread rule: every method may be called from any thread; the catalog
    serialises access to its files itself.
    """

    was_clean: bool

    def entries(self) -> list[tuple[CatalogEntry, str]]:
        """Every database with its state; a read-only catalog reads the newest."""
    def begin_create(self, entry: CatalogEntry) -> None:
        """Record the intent to create (hybrid: a row in state creating; the
        name is taken from here on, by the catalog's own uniqueness rule)."""
    def commit_create(self, entry: CatalogEntry) -> None:
        """The database exists (its files are complete)."""
    def abort_create(self, entry: CatalogEntry) -> None:
        """Forget a creation that failed or never returned."""
    def begin_delete(self, entry: CatalogEntry) -> None:
        """Durably record that the database is gone, before its files go."""
    def finish_delete(self, entry: CatalogEntry) -> None:
        """Forget the database and its metadata (its files are gone)."""
    def set_clean(self, clean: bool) -> None: ...
    def has_any(self, folder: str) -> bool: ...
    def get(self, folder: str, vector_id: str) -> Record | None: ...
    def get_many(self, folder: str, ids: Sequence[str]) -> dict[str, Record]: ...
    def put(self, folder: str, items: list[tuple[str, Record]]) -> None: ...
    def remove(self, folder: str, ids: Sequence[str]) -> None: ...
    def all(self, folder: str) -> dict[str, Record]: ...
    def rewrite(self, folder: str, records: dict[str, Record]) -> None: ...
    def compact(self, folder: str) -> None: ...
    def drop(self, folder: str) -> None: ...
    def folders(self) -> set[str]: ...
    def sync(self) -> None:
        """Return when everything written so far survives a power loss."""
    def close(self) -> None: ...


def new_folder_id() -> str:
    """A fresh folder name: short, lower-case hex, safe on every file system."""
    return "db-" + secrets.token_hex(6)


# A folder id, possibly inside the store's work names ``.<id>.compact``,
# ``.<id>.old`` and ``.<id>.creating``; anything else in the vectors folder is
# not ours to touch.
_FOLDER_NAME = re.compile(r"^\.?(db-[0-9a-f]{12})(?:\.(?:compact|old|creating))?$")


def folder_of(name: str) -> str | None:
    """The database folder id an entry of the vectors folder belongs to, if any."""
    match = _FOLDER_NAME.match(name)
    return match.group(1) if match else None


def fsync_dir(path: Path | str) -> None:
    """Make a directory's entries (created, renamed, removed files) durable.

    Raises ``StorageFullError`` for a full disk and an ``OSError`` naming the
    folder otherwise (``os.fsync`` alone names no file).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise StorageFullError(exc.errno, f"fsync of the folder failed: {exc.strerror}",
                                   os.fspath(path)) from exc
        raise OSError(exc.errno, f"fsync of the folder failed: {exc.strerror}",
                      os.fspath(path)) from exc
