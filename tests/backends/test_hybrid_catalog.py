"""The hybrid backend's SQLite catalog: each SQLite failure becomes the jadevec
error a caller can act on, and a catalog that is newer, older or inconsistent
is refused at open with nothing changed."""

import errno
import sqlite3

import pytest

import jadevec
from jadevec.backends.hybrid import SqliteCatalog, _error_for
from jadevec.errors import (
    CorruptionError,
    StorageFullError,
    StoreClosedError,
    StoreLockedError,
    UnsupportedVersionError,
)


def sqlite_error(kind, text, code=None):
    exc = kind(text)
    if code is not None:
        exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize("exc,expected,fragment", [
    (sqlite_error(sqlite3.ProgrammingError, "Cannot operate on a closed database."),
     StoreClosedError, "the store is closed"),
    (sqlite_error(sqlite3.OperationalError, "database or disk is full"),
     StorageFullError, "the disk is full"),
    (sqlite_error(sqlite3.OperationalError, "attempt to write a readonly database"),
     PermissionError, "check the permissions of the store folder"),
    (sqlite_error(sqlite3.OperationalError, "database is locked"),
     StoreLockedError, "is locked by another connection"),
    (sqlite_error(sqlite3.OperationalError, "unable to open database file"),
     PermissionError, "cannot open the catalog"),
    (sqlite_error(sqlite3.OperationalError, "out of memory", code=7),
     MemoryError, "out of memory"),
    (sqlite_error(sqlite3.DatabaseError, "file is not a database"),
     CorruptionError, "is damaged (DatabaseError: file is not a database)"),
])
def test_sqlite_errors_become_typed_errors(tmp_path, exc, expected, fragment):
    error = _error_for(exc, tmp_path / "catalog.sqlite3")
    assert type(error) is expected
    assert fragment in str(error)


def test_an_io_error_is_told_from_a_full_disk_or_file_size_limit(tmp_path, monkeypatch):
    catalog = tmp_path / "catalog.sqlite3"
    catalog.write_bytes(b"\0" * (1 << 17))
    io_error = sqlite_error(sqlite3.OperationalError, "disk I/O error", code=10)
    error = _error_for(io_error, catalog)
    assert type(error) is OSError and error.errno == errno.EIO
    assert "I/O error in the catalog" in str(error)

    import resource
    limit = (1 << 17, resource.RLIM_INFINITY)
    monkeypatch.setattr(resource, "getrlimit", lambda which: limit)
    error = _error_for(io_error, catalog)
    assert type(error) is StorageFullError and error.errno == errno.ENOSPC
    assert "the file-size limit" in str(error)
    # Files that are not there, in a folder that is not there: a real I/O error.
    error = _error_for(io_error, tmp_path / "absent" / "catalog.sqlite3")
    assert type(error) is OSError and error.errno == errno.EIO


def store_with_docs(path):
    with jadevec.open(path) as store:
        store.create_database("docs", 2, "l2").store("a", [1, 2], metadata={"k": 1})


@pytest.mark.parametrize("version,advice", [("3", "upgrade jadevec"),
                                            ("1", "written by an older jadevec")])
def test_a_catalog_of_another_schema_version_is_refused(tmp_path, version, advice):
    store_with_docs(tmp_path / "s")
    with sqlite3.connect(tmp_path / "s" / "catalog.sqlite3") as con:
        con.execute("UPDATE store_state SET value = ? WHERE key = 'format'", (version,))
    con.close()
    for read_only in (False, True):
        with pytest.raises(UnsupportedVersionError, match=f"schema version {version}.*{advice}"):
            jadevec.open(tmp_path / "s", read_only=read_only)


def test_two_entries_with_one_name_are_damage(tmp_path):
    store_with_docs(tmp_path / "s")
    with sqlite3.connect(tmp_path / "s" / "catalog.sqlite3") as con:
        con.execute("INSERT INTO databases VALUES ('db-0123456789ab', 'DOCS', 'docs-alias', 2, "
                    "'l2', 'live')")
    con.close()
    with pytest.raises(CorruptionError, match="two databases share the folder or name of"):
        jadevec.open(tmp_path / "s")


def test_a_read_only_catalog_reads_fresh_rows_and_never_writes(tmp_path):
    store_with_docs(tmp_path / "s")
    path = tmp_path / "s" / "catalog.sqlite3"
    reader = SqliteCatalog(path, read_only=True)
    folder = next(iter(reader.folders()))
    assert reader.has_any(folder)
    with jadevec.open(tmp_path / "s") as writer:
        writer.get_database("docs").delete("a")
    assert not reader.has_any(folder)  # asked again, not remembered
    before = path.stat().st_mtime_ns, path.stat().st_size
    reader.sync()
    reader.close()
    reader.close()  # a second close does nothing
    assert (path.stat().st_mtime_ns, path.stat().st_size) == before
    with pytest.raises(StoreClosedError, match="the store is closed"):
        reader.has_any(folder)


def test_a_failed_rollback_reports_the_error_that_caused_it(tmp_path):
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite3", read_only=False)

    class Failing:
        """A connection whose ROLLBACK fails too, as on a disk that went away."""

        def __init__(self, db):
            self._db = db
            self.in_transaction = True

        def execute(self, sql, *args):
            if sql == "ROLLBACK":
                raise sqlite3.OperationalError("disk I/O error")
            return self._db.execute(sql, *args)

    def fail(db):
        db.execute("UPDATE store_state SET value = '0' WHERE key = 'clean'")
        raise ValueError("the statement failed")

    real = catalog._db
    catalog._db = Failing(real)
    with pytest.raises(ValueError, match="the statement failed"):
        catalog._write(fail)
    catalog._db = real
    real.execute("ROLLBACK")
    assert real.execute("SELECT value FROM store_state WHERE key = 'clean'").fetchone() == ("1",)
    catalog.set_clean(False)  # the connection still works
    assert real.execute("SELECT value FROM store_state WHERE key = 'clean'").fetchone() == ("0",)
    catalog.close()

