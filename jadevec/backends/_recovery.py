"""Recovery of a persistent store on a writer's open. Private.

Run by :class:`~jadevec.backends._persistent.PersistentBackend` before it
accepts a write, in this order; each step is idempotent, so a crash inside
recovery is repaired by the next open:

1. **Unfinished lifecycle intents** (hybrid keeps them in the catalog): a
   database left *creating* (its creation never returned) is rolled back:
   its files and row go. Exception: if its folder holds a file set with
   vectors (which a creation cannot have written), the catalog is what is
   wrong: the database is kept as live and the report says so. A database
   left *deleting* has its deletion finished.
2. **Orphans**: every folder of ``vectors/`` that no database names is a
   creation that never reached the catalog (mmap) or debris; an empty one is
   removed, one holding vectors (or unreadable) is kept and reported, never
   deleted: a damaged catalog must not cost data.
3. **Metadata** (after an unclean shutdown only): every record is resolved
   against its database's live vector; records of vectors never written or
   deleted are removed, records ahead of their vector rolled back, the rest
   settled.

The vector file sets recover themselves when first opened (replaying the
writes after their newest commit); their reports reach the store's
``recovery_report`` through the vector store's ``on_recovery`` callback,
also when that happens lazily, at first use.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from jadevec._core.vector_file import VectorFile
from jadevec.backends._catalog import CREATING, DELETING, LIVE, CatalogEntry, folder_of, fsync_dir
from jadevec.backends._pairing import DROP, UNKNOWN, Record, fingerprints, resolve, settled

if TYPE_CHECKING:
    from jadevec.backends._persistent import PersistentBackend

__all__ = ["recover_store"]

log = logging.getLogger("jadevec")


def vectors_held(folder: Path) -> str | None:
    """What a folder holds that recovery must not delete, or ``None``.

    A crash can only leave an empty file set (a creation that never returned)
    or none at all; a folder with vectors, or one that cannot be read, is
    kept for a human.
    """
    if not (folder / "vectors.jvdb").exists():
        return None
    try:
        with VectorFile.open(folder, read_only=True) as vf:
            n = len(vf)
    except Exception as exc:  # noqa: BLE001 - unreadable: keep it for a human
        return f"an unreadable file set ({type(exc).__name__})"
    return f"{n} vectors" if n else None


def remove_folder(backend: PersistentBackend, folder: str) -> None:
    """Remove every file of a database folder and its metadata (idempotent)."""
    backend._vectors.delete_database_vectors(folder, "the database was removed by recovery")
    vectors_dir = backend.path / "vectors"
    for name in (folder, f".{folder}.compact", f".{folder}.old", f".{folder}.creating"):
        shutil.rmtree(vectors_dir / name, ignore_errors=True)
    backend._catalog.drop(folder)


def recover_store(backend: PersistentBackend,
                  entries: list[tuple[CatalogEntry, str]]) -> tuple[list[str], list[str]]:
    """Finish intents, sweep orphans, pair metadata. Returns (actions, databases touched)."""
    actions: list[str] = []
    touched: list[str] = []
    catalog = backend._catalog
    vectors_dir = backend.path / "vectors"
    for entry, state in entries:
        if state == CREATING:
            held = vectors_held(vectors_dir / entry.folder)
            if held:
                catalog.commit_create(entry)
                backend._databases[entry.name.lower()] = entry
                actions.append(f"kept database {entry.name!r}: it was marked as being created, "
                               f"but its folder holds {held} (was the catalog damaged?)")
            else:
                remove_folder(backend, entry.folder)
                catalog.abort_create(entry)
                actions.append(f"rolled back the unfinished creation of database "
                               f"{entry.name!r}")
            touched.append(entry.name)
        elif state == DELETING:
            remove_folder(backend, entry.folder)
            catalog.finish_delete(entry)
            actions.append(f"finished the interrupted deletion of database {entry.name!r}")
            touched.append(entry.name)
    named = {e.folder for e, s in entries if s == LIVE} | {
        e.folder for e in backend._databases.values()}
    names = [p.name for p in vectors_dir.iterdir()] if vectors_dir.is_dir() else []
    on_disk = {f for f in map(folder_of, names) if f is not None}
    for folder in sorted((on_disk | catalog.folders()) - named):
        held = vectors_held(vectors_dir / folder)
        if held:  # a damaged catalog entry must not cost the data: keep it
            actions.append(f"kept folder {folder!r}: no database names it, but it holds "
                           f"{held} (is the catalog damaged?)")
            continue
        remove_folder(backend, folder)
        actions.append(f"removed orphaned folder {folder!r} that no database names")
    if actions and vectors_dir.is_dir():
        fsync_dir(vectors_dir)
    if not catalog.was_clean:
        actions.append("the store was not closed cleanly; metadata paired with vectors")
        for entry in list(backend._databases.values()):
            fixed = pair_metadata(backend, entry)
            if fixed:
                actions.extend(fixed)
                touched.append(entry.name)
    return actions, touched


def pair_metadata(backend: PersistentBackend, entry: CatalogEntry) -> list[str]:
    """Resolve every metadata record of a database against its live vectors."""
    catalog = backend._catalog
    records = catalog.all(entry.folder)
    if not records:
        return []
    ids = list(records)
    live = backend._vectors.batch_retrieve(entry.folder, ids)
    dropped = rolled_back = unknown = 0
    kept: dict[str, Record] = {}
    for vid, vec in zip(ids, live, strict=True):
        record = records[vid]
        live_fp = None if vec is None else fingerprints(vec.reshape(1, -1))[0]
        meta = resolve(record, live_fp)
        if meta is DROP:
            dropped += 1
            continue
        if meta is UNKNOWN:
            unknown += 1
            meta = None
        elif live_fp != record.fp:
            rolled_back += 1
        kept[vid] = settled(meta, live_fp)  # type: ignore[arg-type]
    if kept == records:
        return []
    catalog.rewrite(entry.folder, kept)
    out = []
    if dropped:
        out.append(f"{entry.name!r}: removed {dropped} metadata records whose vector "
                   "was never written or was deleted")
    if rolled_back:
        out.append(f"{entry.name!r}: rolled {rolled_back} metadata records back to the "
                   "version paired with the live vector")
    if unknown:
        out.append(f"{entry.name!r}: {unknown} vectors lost their metadata (their record "
                   "and vector disagree, as after a power loss inside the checkpoint window)")
    return out

