"""One database of an LMDB store: vector operations as LMDB transactions.

Keys. A database has a number (its *prefix*, 8 bytes big-endian) given at
creation and never reused, so a handle to a deleted database cannot see a new
one of the same name. A vector's key is ``prefix + utf-8(id)``; an id too long
for an LMDB key (511 bytes by default) is stored as ``prefix + 0xFF +
sha256(utf-8(id))`` with the full id under the same key in ``long_ids``.
UTF-8 never contains the byte 0xFF, so the two forms cannot collide.

Sub-databases, all written in one transaction per call:

=========== ============================ ===================================
``vectors``  vector key                   raw little-endian float32 bytes
``metadata`` vector key                   metadata JSON text (absent: none)
``long_ids`` hashed vector key            the full id, utf-8
``stats``    prefix                       count and generation (2 x uint64 LE)
=========== ============================ ===================================

Every operation first checks, in its own transaction, that the catalog still
maps the database's name to this handle's record; a deleted database raises
:class:`~jadevec.errors.DatabaseNotFoundError`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from jadevec.backends.base import DatabaseBackend, DatabaseInfo, SearchResult
from jadevec.errors import (
    CorruptionError,
    DatabaseNotFoundError,
    ReadOnlyError,
    StoreClosedError,
    VectorNotFoundError,
)

from jadevec_lmdb._search_cache import SearchCache

if TYPE_CHECKING:
    from jadevec_lmdb._backend import LmdbBackend
    from jadevec_lmdb._environment import Txn

__all__ = ["LONG_ID_MARK", "STATS", "LmdbDatabase", "prefix_of"]

#: Count and generation of a database, the value in ``stats``.
STATS = struct.Struct("<QQ")
#: Byte after the prefix that marks a hashed (long) id.
LONG_ID_MARK = 0xFF
_PREFIX_BYTES = 8


def prefix_of(number: int) -> bytes:
    """The key prefix of database ``number``; big-endian so a database's keys are contiguous."""
    return number.to_bytes(_PREFIX_BYTES, "big")


class LmdbDatabase(DatabaseBackend):
    """A handle to one database of an :class:`~jadevec_lmdb.LmdbBackend`.

    Built by the backend; ``record`` is the catalog value it was opened with.
    """

    def __init__(self, backend: LmdbBackend, info: DatabaseInfo, number: int,
                 record: bytes) -> None:
        self.info = info
        self._backend = backend
        self._shared = backend._shared
        self._dbs = self._shared.dbs
        self._catalog_key = info.name.lower().encode()
        self._record = record
        self._prefix = prefix_of(number)
        self._short_limit = self._shared.max_key_size - _PREFIX_BYTES
        self._row_bytes = 4 * info.dimension
        self._cache = SearchCache(info.dimension)

    # -- helpers ----------------------------------------------------------------------------

    def _key(self, vector_id: str) -> bytes:
        raw = vector_id.encode("utf-8")
        if len(raw) <= self._short_limit:
            return self._prefix + raw
        return self._prefix + bytes((LONG_ID_MARK,)) + hashlib.sha256(raw).digest()

    def _id_of(self, txn: Txn, key: bytes) -> str:
        try:
            if key[_PREFIX_BYTES] != LONG_ID_MARK:
                return key[_PREFIX_BYTES:].decode("utf-8")
            raw = txn.get(key, db=self._dbs[b"long_ids"])
            if raw is None:
                raise CorruptionError(
                    f"{str(self._shared.data_path)!r}: database {self.info.name!r}: "
                    f"a hashed id key has no entry in 'long_ids'"
                )
            return raw.decode("utf-8")
        except (IndexError, UnicodeDecodeError) as exc:
            raise CorruptionError(f"{str(self._shared.data_path)!r}: database "
                                  f"{self.info.name!r}: a vector key is damaged ({exc}): "
                                  f"{key[:80]!r}") from None

    def _check_alive(self, txn: Txn) -> None:
        if txn.get(self._catalog_key, db=self._dbs[b"catalog"]) != self._record:
            raise DatabaseNotFoundError(f"database {self.info.name!r} was deleted")

    def _check_usable(self, write: bool) -> None:
        if self._backend._closed:
            raise StoreClosedError(f"the store of database {self.info.name!r} is closed")
        if write and self._backend._read_only:
            raise ReadOnlyError(f"the store of database {self.info.name!r} is read-only")

    def _stats(self, txn: Txn) -> tuple[int, int]:
        raw = txn.get(self._prefix, db=self._dbs[b"stats"])
        if raw is None or len(raw) != STATS.size:
            raise CorruptionError(
                f"{str(self._shared.data_path)!r}: database {self.info.name!r}: "
                f"field 'stats' is missing or has the wrong size"
            )
        count, generation = STATS.unpack(raw)
        return count, generation

    def _vector(self, raw: bytes | None, vector_id: str) -> np.ndarray | None:
        if raw is None:
            return None
        if len(raw) != self._row_bytes:
            raise CorruptionError(
                f"{str(self._shared.data_path)!r}: database {self.info.name!r}: vector "
                f"{vector_id!r} has {len(raw)} bytes, expected {self._row_bytes}"
            )
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)  # astype copies

    def _keys_in(self, txn: Txn, db: bytes):
        """Yield ``(key, value)`` of this database in sub-database ``db``."""
        cursor = txn.cursor(db=self._dbs[db])
        if not cursor.set_range(self._prefix):
            return
        for key, value in cursor:
            if not key.startswith(self._prefix):
                return
            yield key, value

    # -- writes -----------------------------------------------------------------------------

    def store(self, ids: Sequence[str], vectors: np.ndarray,
              metadatas: Sequence[str | None] | None) -> None:
        self._check_usable(write=True)
        keys = [self._key(i) for i in ids]
        texts = [None] * len(ids) if metadatas is None else [
            None if m is None else m.encode("utf-8", "surrogatepass") for m in metadatas]
        rows = np.ascontiguousarray(vectors, dtype="<f4").data.cast("B")
        width = self._row_bytes

        def body(txn: Txn) -> tuple[int, int]:
            # Looked up here: a compaction replaces the handles between transactions.
            vec, meta = self._dbs[b"vectors"], self._dbs[b"metadata"]
            long_ids = self._dbs[b"long_ids"]
            self._check_alive(txn)
            count, generation = self._stats(txn)
            for row, key in enumerate(keys):
                if txn.replace(key, rows[row * width:(row + 1) * width], db=vec) is None:
                    count += 1
                    if key[_PREFIX_BYTES] == LONG_ID_MARK:
                        txn.put(key, ids[row].encode("utf-8"), db=long_ids)
                text = texts[row]
                if text is None:
                    txn.delete(key, db=meta)
                else:
                    txn.put(key, text, db=meta)
            txn.put(self._prefix, STATS.pack(count, generation + 1), db=self._dbs[b"stats"])
            return generation, generation + 1

        if not keys:
            self._shared.read(self._check_alive)
            return
        with self._shared.write_lock:
            before, after = self._shared.write(body)
            with self._cache.lock:
                self._cache.apply(before, after, stored=ids, vectors=vectors)

    def update(self, vector_id: str, vector: np.ndarray, metadata: str | None,
               replace_metadata: bool) -> None:
        self._check_usable(write=True)
        key = self._key(vector_id)
        row = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
        text = None if metadata is None else metadata.encode("utf-8", "surrogatepass")

        def body(txn: Txn) -> tuple[int, int]:
            self._check_alive(txn)
            count, generation = self._stats(txn)
            if txn.replace(key, row.tobytes(), db=self._dbs[b"vectors"]) is None:
                raise VectorNotFoundError(vector_id)  # the abort undoes the insert
            if replace_metadata:
                if text is None:
                    txn.delete(key, db=self._dbs[b"metadata"])
                else:
                    txn.put(key, text, db=self._dbs[b"metadata"])
            txn.put(self._prefix, STATS.pack(count, generation + 1), db=self._dbs[b"stats"])
            return generation, generation + 1

        with self._shared.write_lock:
            before, after = self._shared.write(body)
            with self._cache.lock:
                self._cache.apply(before, after, stored=[vector_id], vectors=row[None, :])

    def delete(self, vector_id: str) -> bool:
        self._check_usable(write=True)
        key = self._key(vector_id)

        def body(txn: Txn) -> tuple[int, int] | None:
            self._check_alive(txn)
            if not txn.delete(key, db=self._dbs[b"vectors"]):
                return None
            count, generation = self._stats(txn)
            txn.delete(key, db=self._dbs[b"metadata"])
            txn.delete(key, db=self._dbs[b"long_ids"])
            txn.put(self._prefix, STATS.pack(count - 1, generation + 1), db=self._dbs[b"stats"])
            return generation, generation + 1

        with self._shared.write_lock:
            moved = self._shared.write(body)
            if moved is None:
                return False
            with self._cache.lock:
                self._cache.apply(*moved, deleted=[vector_id])
        return True

    def compact(self) -> None:
        """Give the file's free pages back, then repack the search matrix.

        The data file is one for the whole store, so this compacts it for
        every database (see :meth:`LmdbBackend.compact_file`): when an eighth
        or more of its pages are free it is replaced by LMDB's compacting copy;
        below that, LMDB's reuse of free pages keeps it from growing.
        """
        self._check_usable(write=True)
        self._shared.read(self._check_alive)
        self._backend.compact_file()
        with self._cache.lock:
            self._cache.repack()

    # -- reads ------------------------------------------------------------------------------

    def retrieve(self, vector_id: str) -> np.ndarray | None:
        self._check_usable(write=False)
        key = self._key(vector_id)

        def body(txn: Txn) -> np.ndarray | None:
            self._check_alive(txn)
            return self._vector(txn.get(key, db=self._dbs[b"vectors"]), vector_id)

        return self._shared.read(body)

    def retrieve_many(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        self._check_usable(write=False)
        keys = [self._key(i) for i in ids]

        def body(txn: Txn) -> list[np.ndarray | None]:
            vec = self._dbs[b"vectors"]
            self._check_alive(txn)
            pairs = zip(keys, ids, strict=True)
            return [self._vector(txn.get(key, db=vec), i) for key, i in pairs]

        return self._shared.read(body)

    def contains(self, vector_id: str) -> bool:
        self._check_usable(write=False)
        key = self._key(vector_id)

        def body(txn: Txn) -> bool:
            self._check_alive(txn)
            return txn.cursor(db=self._dbs[b"vectors"]).set_key(key)

        return self._shared.read(body)

    def count(self) -> int:
        self._check_usable(write=False)

        def body(txn: Txn) -> int:
            self._check_alive(txn)
            return self._stats(txn)[0]

        return self._shared.read(body)

    def list_ids(self) -> list[str]:
        self._check_usable(write=False)

        def body(txn: Txn) -> list[str]:
            self._check_alive(txn)
            return [self._id_of(txn, key) for key, _ in self._keys_in(txn, b"vectors")]

        return self._shared.read(body)

    def get_metadata(self, vector_id: str) -> str | None:
        self._check_usable(write=False)
        key = self._key(vector_id)

        def body(txn: Txn) -> str | None:
            self._check_alive(txn)
            raw = txn.get(key, db=self._dbs[b"metadata"])
            return None if raw is None else self._metadata(raw, vector_id)

        return self._shared.read(body)

    def _metadata(self, raw: bytes, vector_id: str) -> str:
        # The caller parses what is returned: text that is not JSON must be
        # reported as damage here, where the file is known.
        try:
            text = raw.decode("utf-8", "surrogatepass")
            json.loads(text)
        except ValueError as exc:
            raise CorruptionError(
                f"{str(self._shared.data_path)!r}: database {self.info.name!r}: the metadata "
                f"of {vector_id!r} is damaged ({exc})") from None
        return text

    def search(self, queries: np.ndarray, k: int) -> list[SearchResult]:
        self._check_usable(write=False)
        cache = self._cache

        def refresh(txn: Txn) -> None:
            self._check_alive(txn)
            generation = self._stats(txn)[1]
            if cache.generation == generation:
                return
            ids, rows = [], []
            for key, raw in self._keys_in(txn, b"vectors"):
                ids.append(self._id_of(txn, key))
                rows.append(raw)
            for raw, vector_id in zip(rows, ids, strict=True):
                if len(raw) != self._row_bytes:
                    self._vector(raw, vector_id)  # raises CorruptionError naming it
            packed = b"".join(rows)
            rows.clear()  # halve the peak memory of a large load
            matrix = np.frombuffer(packed, dtype="<f4").reshape(len(ids), self.info.dimension)
            cache.load(generation, ids, matrix)

        with cache.lock:
            self._shared.read(refresh)
            return cache.search(queries, k, self.info.metric)

    # -- lifecycle --------------------------------------------------------------------------

    def drop_cache(self) -> None:
        """Free the search matrix (the database was deleted or the store closed)."""
        with self._cache.lock:
            self._cache.clear()
