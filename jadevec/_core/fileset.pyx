"""What the modules of the vector file set share, over the C unit ``jv_fileset``.

* :func:`raise_status` (cdef): the one place a failed ``jv_status`` becomes a
  typed exception naming the file, the field and where.
* :func:`create_at` (cdef): crash-atomic creation: the set is built in
  ``.<name>.creating`` beside its path, synced, renamed into place (never
  over an existing folder) and the parent synced, so a crash leaves either
  nothing or a complete, empty file set.
* :func:`mark_moved`: write a commit record with state *moved* into a file
  set that compaction replaced or that is about to be removed, so readers in
  other processes reopen the folder.

docs/vector_file_format.md specifies every byte these touch.
"""

import errno
import os
import shutil
import stat

from cpython.bytes cimport PyBytes_AS_STRING
from libc.errno cimport ENOSYS
from libc.string cimport memcpy

from jadevec._core._types cimport uint32_t, uint64_t
from jadevec._core.layout cimport (
    JV_COMMIT_B_OFFSET,
    JV_FORMAT_VERSION,
    JV_HEADER_PAGE,
    JV_MAX_COUNTER,
    JV_NO_POSITION,
    JV_READER_SLOTS,
    JV_ST_BUSY,
    JV_ST_CLOSED,
    JV_ST_CORRUPT,
    JV_ST_FAILED,
    JV_ST_FULL,
    JV_ST_MOVED,
    JV_ST_OS,
    JV_ST_READONLY,
    JV_STATE_MOVED,
    jv_commit,
    jv_commit_check,
    jv_commit_seal,
    jv_crc32c,
    jv_crc32c_force_software,
    jv_fs_close,
    jv_fs_create,
    jv_fs_new,
    jv_status,
)
from jadevec._core.mapped_file cimport (
    jv_fsync_dir,
    jv_rename_exchange,
    jv_rename_noreplace,
    raise_os_error,
)

from jadevec._core.crashpoints import crash_point
from jadevec.errors import (
    CorruptionError,
    StorageFullError,
    StoreClosedError,
    StoreFailedError,
    StoreLockedError,
)

__all__ = ["FILE_NAMES", "FORMAT_VERSION", "FileSetMoved", "crc32c", "mark_moved",
           "swap_folders"]

FILE_NAMES = ("vectors.jvdb", "slots.jvsl", "index.jvix", "ids.jvid", "readers.jvrd")
FORMAT_VERSION = JV_FORMAT_VERSION


class FileSetMoved(StoreClosedError):
    """A read-only file set was replaced by compaction or removed: reopen its folder."""


def crc32c(data, crc=0):
    """Return the CRC32C of ``data`` (bytes-like), continuing ``crc``."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    if view.shape[0] == 0:
        return crc
    return jv_crc32c(crc, &view[0], view.shape[0])


def _crc32c_force_software(bint force):
    """Test hook: use the portable CRC32C (True) or the best one (False)."""
    return bool(jv_crc32c_force_software(force))


cdef int raise_status(str folder, const jv_status *st) except -1:
    path = os.path.join(folder, FILE_NAMES[st.file]) if 0 <= st.file < 5 else folder
    what = st.what.decode("ascii") if st.what != NULL else ""
    if st.code == JV_ST_OS:
        return raise_os_error(st.err, what, path)
    if st.code == JV_ST_CORRUPT:
        at = "" if st.where == JV_NO_POSITION else f" (at {st.where})"
        raise CorruptionError(f"{path}: {what}{at}")
    if st.code == JV_ST_CLOSED:
        raise StoreClosedError(f"{folder}: the vector file set is closed")
    if st.code == JV_ST_READONLY:
        raise PermissionError(f"{folder}: the vector file set was opened read-only")
    if st.code == JV_ST_FAILED:
        raise StoreFailedError(
            f"{folder}: an earlier sync failed; reopen the file set to recover it")
    if st.code == JV_ST_FULL:
        raise StorageFullError(f"{path}: {what} ({st.where})")
    if st.code == JV_ST_MOVED:
        raise FileSetMoved(f"{folder}: the file set was replaced or removed; reopen the folder")
    if st.code == JV_ST_BUSY:
        raise StoreLockedError(
            f"{path}: {what}: {JV_READER_SLOTS} read-only processes have this database "
            f"open; close some of them")
    raise RuntimeError(f"{path}: unknown status {st.code}")


cdef jv_fileset *new_fileset() except NULL:
    cdef jv_fileset *fs = jv_fs_new()
    if fs == NULL:
        raise MemoryError("cannot allocate a vector file set")
    return fs


cdef int create_at(jv_fileset *fs, str path, uint32_t dimension, uint32_t capacity,
                   uint64_t first_generation) except -1:
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    if os.path.lexists(path):
        raise FileExistsError(17, "a vector file set or other file already exists", path)
    temp = os.path.join(parent, f".{name}.creating")
    try:
        if os.path.islink(temp) or os.path.isfile(temp):
            os.unlink(temp)  # not ours; never follow it
        elif os.path.lexists(temp):
            shutil.rmtree(temp)  # left by a create that a crash interrupted
        os.makedirs(temp)
    except OSError as exc:
        if exc.errno is None:
            raise
        # A full disk here is StorageFullError like every later write of the set.
        raise_os_error(exc.errno, "preparing the new file set's folder",
                       exc.filename if isinstance(exc.filename, str) else temp)
    cdef bytes temp_b = os.fsencode(temp)
    cdef bytes path_b = os.fsencode(path)
    cdef bytes parent_b = os.fsencode(parent)
    cdef const char *temp_c = PyBytes_AS_STRING(temp_b)
    cdef const char *parent_c = PyBytes_AS_STRING(parent_b)
    cdef uint64_t set_id = int.from_bytes(os.urandom(8), "little") or 1
    cdef jv_status st
    cdef int rc
    try:
        with nogil:
            rc = jv_fs_create(fs, temp_c, dimension, capacity, set_id, first_generation, &st)
        if rc:
            raise_status(temp, &st)
        crash_point("create:files")
        with nogil:
            rc = jv_fsync_dir(temp_c)
        if rc:
            raise_os_error(rc, "fsync", temp)
        crash_point("create:synced")
        rc = jv_rename_noreplace(temp_b, path_b)
        if rc:
            raise_os_error(rc, "rename", path)
        crash_point("create:renamed")
        with nogil:
            rc = jv_fsync_dir(parent_c)
        if rc:
            raise_os_error(rc, "fsync", parent)
    except BaseException:
        fs.failed = 1  # close without a checkpoint: the files are going
        jv_fs_close(fs, 0, &st)
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return 0


def mark_moved(path):
    """Tell readers of the file set in ``path`` that it was replaced or is going away.

    Writes a commit record with state *moved* (the newest commit's copy, one
    generation on) into the record the newest does not occupy, and syncs it.
    Nothing happens when the set has no valid commit record (readers cannot
    use it anyway), the files are missing or are not regular files. Links are
    never followed: the set is marked only where it is.
    """
    nofollow = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | nofollow)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return
        raise
    try:
        fd = os.open(FILE_NAMES[0], os.O_RDWR | nofollow, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EISDIR, errno.ELOOP, errno.ENXIO):
            return
        raise
    finally:
        os.close(dir_fd)
    cdef jv_commit r[2]
    cdef jv_commit moved
    cdef bytes page
    cdef int pick
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        page = os.pread(fd, JV_HEADER_PAGE, 0)
        if len(page) < JV_HEADER_PAGE:
            return
        memcpy(&r[0], PyBytes_AS_STRING(page), sizeof(jv_commit))
        memcpy(&r[1], PyBytes_AS_STRING(page) + JV_COMMIT_B_OFFSET, sizeof(jv_commit))
        ok0 = jv_commit_check(&r[0]) == 0
        ok1 = jv_commit_check(&r[1]) == 0
        if not ok0 and not ok1:
            return
        pick = 1 if (not ok0 or (ok1 and r[1].generation > r[0].generation)) else 0
        moved = r[pick]
        if moved.state == JV_STATE_MOVED or moved.generation >= JV_MAX_COUNTER:
            return
        moved.state = JV_STATE_MOVED
        moved.generation += 1
        jv_commit_seal(&moved)
        os.pwrite(fd, (<char *>&moved)[:sizeof(jv_commit)],
                  0 if pick else JV_COMMIT_B_OFFSET)
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_folders(new, folder, old):
    """Put the folder ``new`` at ``folder`` and the previous ``folder`` aside.

    One atomic exchange where the system has it (Linux ``renameat2``, macOS
    ``renamex_np``): afterwards ``new`` holds the previous set, and a reader
    opening ``folder`` finds one set or the other, never nothing. Elsewhere
    two renames: ``folder`` to ``old``, then ``new`` to ``folder`` (a crash
    between them is finished by the next open, which finds ``new`` complete).
    """
    cdef bytes a = os.fsencode(os.fspath(new)), b = os.fsencode(os.fspath(folder))
    cdef int rc = jv_rename_exchange(a, b)
    if rc == 0:
        return
    if rc != ENOSYS:
        raise_os_error(rc, f"exchange with {os.fsdecode(a)}", os.fsdecode(b))
    os.rename(folder, old)
    os.rename(new, folder)
