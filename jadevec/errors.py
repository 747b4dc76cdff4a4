"""Typed errors of jadevec.

Every error derives from :class:`JadevecError` and from the builtin a Python
user would catch for the same problem, so ``except KeyError`` keeps working.
This module imports nothing from jadevec: every layer may raise these.
"""

from __future__ import annotations

__all__ = [
    "JadevecError",
    "InvalidInputError",
    "InvalidNameError",
    "DimensionMismatchError",
    "DatabaseExistsError",
    "DatabaseNotFoundError",
    "VectorNotFoundError",
    "StoreClosedError",
    "StoreNotFoundError",
    "StoreLockedError",
    "ReadOnlyError",
    "CorruptionError",
    "UnsupportedVersionError",
    "StorageFullError",
    "StoreFailedError",
    "UnsupportedError",
    "UnknownOptionError",
    "BackendNotFoundError",
    "BackendLoadError",
    "SimdUnavailableError",
]


class JadevecError(Exception):
    """Base class of every error jadevec raises."""


class InvalidInputError(JadevecError, ValueError, TypeError):
    """An argument has the wrong type, shape or value; nothing was changed.

    It is both a ``ValueError`` and a ``TypeError`` so that a wrong id type is
    caught as either.
    """


class InvalidNameError(InvalidInputError):
    """A database name does not match ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``."""


class DimensionMismatchError(InvalidInputError):
    """A vector's length differs from the database's dimension."""


class DatabaseExistsError(JadevecError, ValueError):
    """A database with this name (ignoring case) already exists."""


class DatabaseNotFoundError(JadevecError, KeyError):
    """No database has this name (or a handle refers to a deleted one)."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0]) if self.args else ""


class VectorNotFoundError(JadevecError, KeyError):
    """No vector has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreClosedError(JadevecError, ValueError):
    """The store, database or file was closed (as for an I/O operation on a closed file)."""


class StoreNotFoundError(JadevecError, FileNotFoundError):
    """``read_only=True`` was asked for a folder that holds no store."""


class StoreLockedError(JadevecError, OSError):
    """Another process holds the store's writer lock."""


class ReadOnlyError(JadevecError, PermissionError):
    """A write was attempted on a store opened with ``read_only=True``."""


class CorruptionError(JadevecError, OSError):
    """A file's bytes fail a check (magic, checksum, bounds); names file and field."""


class UnsupportedVersionError(CorruptionError):
    """A file was written by a newer format version than this jadevec reads."""


class StorageFullError(JadevecError, OSError):
    """The disk is full (ENOSPC) or the file reached its size limit (EFBIG)."""


class StoreFailedError(JadevecError, OSError):
    """An earlier sync failed; the store refuses writes until it is reopened."""


class UnsupportedError(JadevecError, NotImplementedError):
    """The backend lacks the capability this call needs (for example metadata)."""


class UnknownOptionError(JadevecError, TypeError):
    """A store option was not recognised by the backend (as for an unexpected keyword)."""


class BackendNotFoundError(JadevecError, LookupError):
    """No backend is registered under this name; the message lists the known ones."""


class BackendLoadError(JadevecError, ImportError):
    """A backend plugin is registered but failed to import."""


class SimdUnavailableError(JadevecError, RuntimeError):
    """``JADEVEC_SIMD`` forced a SIMD level this CPU or OS cannot run."""
