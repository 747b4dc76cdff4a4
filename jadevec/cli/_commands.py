"""What each ``jadevec`` command does, once its arguments are parsed.

Every command opens the store, does its work and closes it (``with``), so a
command is a process and the next command is a restart. Commands that only
read open the store with ``read_only=True``: they take no writer lock and run
beside a writer in another process. Each returns an exit status and prints
its result to stdout (``--json`` for a machine-readable form); problems are
raised as :class:`UserError` or a ``jadevec`` error and turned into one line
on stderr by the caller.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import jadevec
from jadevec.backends import load_backend
from jadevec.cli._input import open_vector_file
from jadevec.cli._progress import progress
from jadevec.cli._signals import Interrupted, Interrupts

__all__ = ["UserError", "COMMANDS"]

# Ids read back per call by verify and export.
_READ_CHUNK = 4096


class UserError(jadevec.InvalidInputError):
    """A problem with what the user asked for; the message says what to do."""


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}es" if noun.endswith("ch") else f"{count} {noun}s"


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    if args.json:
        print(json.dumps(result))
    elif text:
        print(text)


def _open(args: argparse.Namespace, write: bool, create: bool = False) -> jadevec.Store:
    """Open the store: read-only unless ``write``; only ``create`` makes a new folder."""
    folder = Path(args.data_dir)
    persistent = load_backend(args.backend).persistent
    if persistent and not create and not folder.is_dir():
        raise UserError(
            f"no store in {str(folder)!r}; create a database first (jadevec --data-dir "
            f"{folder} create --database NAME --dimension N) or point --data-dir at a store"
        )
    if not persistent:
        return jadevec.open(folder, backend=args.backend)
    try:
        return jadevec.open(folder, backend=args.backend, read_only=not write)
    except jadevec.StoreNotFoundError:
        if create or not folder.is_dir():
            raise
        maker = _backend_of(folder, besides=args.backend)
        if maker is None:
            raise
        raise UserError(f"the store in {str(folder)!r} was made by the {maker!r} backend, not "
                        f"{args.backend!r}; run the command again with --backend {maker}"
                        ) from None


def _backend_of(folder: Path, besides: str) -> str | None:
    """The installed persistent backend that opens ``folder`` (read-only), if any."""
    for name in jadevec.available_backends():
        if name == besides or not load_backend(name).persistent:
            continue
        try:
            with jadevec.open(folder, backend=name, read_only=True):
                return name
        except jadevec.JadevecError:
            continue
    return None


def _database(store: jadevec.Store, name: str, args: argparse.Namespace) -> jadevec.Database:
    try:
        return store.get_database(name)
    except jadevec.DatabaseNotFoundError:
        known = store.list_databases()
        listing = f" (it holds: {', '.join(known)})" if known else " (it holds none)"
        raise UserError(
            f"no database named {name!r} in {str(args.data_dir)!r}{listing}; create it with: "
            f"jadevec create --database {name} --dimension N"
        ) from None


def _bytes_on_disk(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for file in files:
            try:
                total += os.lstat(os.path.join(root, file)).st_size
            except OSError:  # removed while we walked (a compaction, a drop)
                pass
    return total


def _simd_level() -> str:
    return str(jadevec.simd_info().get("level", "unknown"))


# ---------------------------------------------------------------------- commands


def cmd_create(args: argparse.Namespace) -> int:
    with _open(args, write=True, create=True) as store:
        db = store.create_database(args.database, args.dimension, args.metric)
        result = {"database": db.name, "dimension": db.dimension, "metric": db.metric}
    _emit(args, result, f"created database {db.name!r} (dimension {db.dimension}, "
                        f"metric {db.metric})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if not Path(args.data_dir).exists():
        _emit(args, [], "")
        return 0
    with _open(args, write=False) as store:
        rows = []
        for name in store.list_databases():
            db = store.get_database(name)
            rows.append({"database": db.name, "dimension": db.dimension, "metric": db.metric,
                         "count": len(db)})
    _emit(args, rows, "\n".join(row["database"] for row in rows))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _open(args, write=False) as store:
        if args.database is None:
            names = store.list_databases()
            result: dict[str, Any] = {
                "data_dir": str(store.path), "backend": store.backend, "databases": len(names),
                "vectors": sum(len(store.get_database(n)) for n in names),
            }
        else:
            db = _database(store, args.database, args)
            result = {"database": db.name, "dimension": db.dimension, "metric": db.metric,
                      "count": len(db), "backend": store.backend}
        result["store_bytes_on_disk"] = _bytes_on_disk(Path(args.data_dir))
        result["simd"] = _simd_level()
        result["version"] = jadevec.__version__
    _emit(args, result, "\n".join(f"{key}: {value}" for key, value in result.items()))
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    with _open(args, write=True) as store:
        name = _database(store, args.database, args).name
        store.delete_database(name)
    _emit(args, {"dropped": name}, f"dropped database {name!r}")
    return 0


def cmd_insert(args: argparse.Namespace) -> int:
    batch_size = args.batch_size if args.command == "batch-insert" else 1000
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    shown = args.command == "batch-insert"
    stored = batches = 0
    total: int | None = None
    checking = True
    with Interrupts() as interrupts:
        try:
            with _open(args, write=True) as store:
                db = _database(store, args.database, args)
                source = open_vector_file(args.file, db.dimension, db.metric, args.ids)
                skipped: list[str] = []
                with progress(source.total, "checking", "rows", shown) as bar:
                    report = source.check(args.skip_invalid, interrupts.check, bar.update)
                skipped.extend(report.skipped)
                total = report.valid
                checking = False
                with progress(total, f"storing into {db.name}", "rows", shown) as bar:
                    for batch in source.batches(batch_size, report, skipped.append):
                        db.batch_store(batch.ids, batch.vectors, batch.metadatas)
                        stored += len(batch.ids)
                        batches += 1
                        bar.update(len(batch.ids))
                        interrupts.check()
                store.sync()
        except Interrupted as stop:
            if checking:
                print(f"jadevec: interrupted by {stop.name} while checking {args.file}; "
                      f"nothing was stored", file=sys.stderr)
            else:
                print(f"jadevec: interrupted by {stop.name}: stored {stored} of {total} rows "
                      f"({batches} batches) into {args.database!r} and closed the store; run "
                      f"the same command again to store the rest (stored ids are replaced)",
                      file=sys.stderr)
            return stop.exit_code
    for message in skipped[:10]:
        print(f"jadevec: skipped {message}", file=sys.stderr)
    if len(skipped) > 10:
        print(f"jadevec: ... and {len(skipped) - 10} more skipped rows", file=sys.stderr)
    result = {"database": db.name, "file": args.file, "stored": stored,
              "skipped": len(skipped), "batches": batches}
    text = f"stored {_plural(stored, 'row')} into {db.name!r} in {_plural(batches, 'batch')}"
    if skipped:
        text += f"; skipped {_plural(len(skipped), 'invalid row')}"
    _emit(args, result, text)
    return 0


def _vector_text(vector: np.ndarray) -> list[float]:
    return vector.astype(np.float64).tolist()


def cmd_get(args: argparse.Namespace) -> int:
    with _open(args, write=False) as store:
        db = _database(store, args.database, args)
        vector = db.retrieve(args.id)
        if vector is None:
            raise UserError(f"no vector with id {args.id!r} in {db.name!r}; "
                            f"list what is there with: jadevec export --database {db.name} "
                            f"--out FILE")
        metadata = db.get_metadata(args.id)
    result = {"id": args.id, "values": _vector_text(vector), "metadata": metadata}
    _emit(args, result, f"id: {args.id}\nmetadata: {json.dumps(metadata)}\n"
                        f"values: {json.dumps(result['values'])}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _open(args, write=True) as store:
        db = _database(store, args.database, args)
        if not db.delete(args.id):
            raise UserError(f"no vector with id {args.id!r} in {db.name!r}; nothing was deleted")
    _emit(args, {"deleted": args.id, "database": db.name},
          f"deleted {args.id!r} from {db.name!r}")
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    with _open(args, write=False) as store:
        db = _database(store, args.database, args)
        count = len(db)
    _emit(args, {"database": db.name, "count": count}, str(count))
    return 0


def _query_vector(args: argparse.Namespace) -> Any:
    if args.vector is not None:
        try:
            value = json.loads(args.vector)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"--vector is not JSON ({exc.msg} at column {exc.colno}); "
                f"write it as a list of numbers, e.g. --vector \"[0.1, 0.2]\""
            ) from None
    else:
        path = args.vector_file
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if magic == b"\x93NUMPY":
            value = np.load(path, allow_pickle=False)
        else:
            with open(path, encoding="utf-8") as handle:
                try:
                    value = json.load(handle)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); give "
                                    f"a JSON list of numbers or a .npy vector") from None
    if isinstance(value, list) and any(
            isinstance(x, bool) or not isinstance(x, (int, float)) for x in value):
        raise UserError("the query vector must be a list of numbers")
    return value


def cmd_query(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    query = _query_vector(args)
    with _open(args, write=False) as store:
        db = _database(store, args.database, args)
        hits = db.search(query, k=args.k)
    rows = [{"id": vector_id, "score": float(score)} for vector_id, score in hits]
    label = {"cosine": "cosine", "dot": "dot", "l2": "distance"}[db.metric]
    _emit(args, rows, "\n".join(f"{rank}. {row['id']}  {label} {row['score']:.6f}"
                                for rank, row in enumerate(rows, 1)))
    return 0


def _read_back(db: jadevec.Database, ids: list[str]) -> Iterator[tuple[list[str], list[Any]]]:
    for start in range(0, len(ids), _READ_CHUNK):
        chunk = ids[start:start + _READ_CHUNK]
        yield chunk, db.batch_retrieve(chunk)


def _open_to_verify(args: argparse.Namespace) -> jadevec.Store:
    """A writer when the store is free, so that an unclean shutdown is recovered first;
    a reader beside another process's writer."""
    if load_backend(args.backend).persistent and not Path(args.data_dir).is_dir():
        return _open(args, write=False)  # the "no store" error
    try:
        return _open(args, write=True)
    except jadevec.StoreLockedError:
        return _open(args, write=False)


def cmd_verify(args: argparse.Namespace) -> int:
    with _open_to_verify(args) as store:
        names = [_database(store, args.database, args).name] if args.database \
            else store.list_databases()
        databases = [store.get_database(name) for name in names]
        problems: list[str] = []
        vectors = 0
        with progress(sum(len(db) for db in databases), "verifying", "vectors") as bar:
            for db in databases:
                ids = db.list_vectors()
                if len(ids) != len(db):
                    problems.append(f"database {db.name!r}: counts {len(db)} vectors but lists "
                                    f"{len(ids)}")
                for chunk, read in _read_back(db, ids):
                    for vector_id, vector in zip(chunk, read, strict=True):
                        if vector is None:
                            problems.append(f"database {db.name!r}: id {vector_id!r} is listed "
                                            f"but cannot be read")
                        elif vector.shape != (db.dimension,) or not np.isfinite(vector).all():
                            problems.append(f"database {db.name!r}: id {vector_id!r} reads back "
                                            f"a damaged vector")
                    vectors += len(chunk)
                    bar.update(len(chunk))
        # After the read-back, which opened (and so recovered) every database's files.
        problems[:0] = store.verify().problems
        recovery = store.recovery_report
    recovered = list(recovery.actions) if recovery is not None else []
    result = {"ok": not problems, "problems": problems, "databases": len(names),
              "vectors": vectors, "recovered": recovered}
    if recovered and not args.json:
        print(f"recovered after an unclean shutdown: {'; '.join(recovered)}")
    if problems:
        _emit(args, result, "\n".join(problems))
        print(f"jadevec: verify found {len(problems)} problems in {str(args.data_dir)!r}; "
              f"copy out what reads back with export and restore the rest from a backup",
              file=sys.stderr)
        return 3
    _emit(args, result, f"ok: {_plural(len(names), 'database')}, "
                        f"{_plural(vectors, 'vector')} read back, every check passed")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    with _open(args, write=True) as store:
        names = [_database(store, args.database, args).name] if args.database \
            else store.list_databases()
        with progress(len(names), "compacting", "databases") as bar:
            for name in names:
                store.get_database(name).compact()
                bar.update(1)
    _emit(args, {"compacted": names}, f"compacted {_plural(len(names), 'database')}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    as_npy = out.suffix == ".npy"
    ids_out = Path(args.ids) if args.ids else out.with_suffix(".ids")
    if not as_npy and args.ids:
        raise UserError("--ids is only for a .npy export; JSON lines carry the ids in each row")
    partial = out.with_name(out.name + ".partial")
    with _open(args, write=False) as store:
        db = _database(store, args.database, args)
        ids = sorted(db.list_vectors())
        bar = progress(len(ids), f"exporting {db.name}", "vectors")
        try:
            if as_npy:
                bad = next((i for i in ids if "\n" in i or "\r" in i), None)
                if bad is not None:
                    raise UserError(f"the id {bad!r} holds a line break, which an ids file "
                                    f"cannot; export to JSON lines instead (--out FILE.jsonl)")
                matrix = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                                   shape=(len(ids), db.dimension))
                written = 0
                for chunk, read in _read_back(db, ids):
                    matrix[written:written + len(chunk)] = np.stack(read) if chunk else 0
                    written += len(chunk)
                    bar.update(len(chunk))
                matrix.flush()
                del matrix
                ids_partial = ids_out.with_name(ids_out.name + ".partial")
                with open(ids_partial, "w", encoding="utf-8") as handle:
                    handle.writelines(f"{i}\n" for i in ids)
                os.replace(ids_partial, ids_out)
            else:
                with open(partial, "w", encoding="utf-8") as handle:
                    for chunk, read in _read_back(db, ids):
                        for vector_id, vector in zip(chunk, read, strict=True):
                            row: dict[str, Any] = {"id": vector_id,
                                                   "values": _vector_text(vector)}
                            metadata = db.get_metadata(vector_id)
                            if metadata is not None:
                                row["metadata"] = metadata
                            handle.write(json.dumps(row) + "\n")
                        bar.update(len(chunk))
            os.replace(partial, out)
        finally:
            bar.close()
            if partial.exists():
                partial.unlink()
    result = {"database": db.name, "out": str(out), "exported": len(ids)}
    if as_npy:
        result["ids"] = str(ids_out)
    where = f"{out} and {ids_out}" if as_npy else str(out)
    _emit(args, result, f"exported {len(ids)} vectors of {db.name!r} to {where}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    # Opened for writing: a backup commits each database before copying it,
    # so it runs in the writer's process (another writer makes this a lock error).
    with _open(args, write=True) as store:
        names = store.list_databases()
        store.backup(dest)
    _emit(args, {"backup": str(dest), "databases": len(names)},
          f"backed up {_plural(len(names), 'database')} to {dest}; open it with "
          f"--data-dir {dest}")
    return 0


COMMANDS = {
    "create": cmd_create, "list": cmd_list, "info": cmd_info, "drop": cmd_drop,
    "insert": cmd_insert, "batch-insert": cmd_insert, "get": cmd_get, "delete": cmd_delete,
    "count": cmd_count, "query": cmd_query, "verify": cmd_verify, "compact": cmd_compact,
    "export": cmd_export, "backup": cmd_backup,
}
