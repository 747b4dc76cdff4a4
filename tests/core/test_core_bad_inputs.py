# ruff: noqa: E501  (CASES holds one statement per line, however long)
"""Misuse of the compiled modules straight from Python.

The core trusts the API layer to validate, but a wrong call from Python must
still end in an exception (a jadevec error, or the builtin a Python user would
expect for a wrong type or an impossible size), never a crash. Each case runs
in a worker subprocess so a SIGSEGV fails that case instead of pytest.

Besides wrong arguments: read-only opens of missing and damaged file sets,
``mark_moved`` and ``swap_folders`` of odd paths, ``compact_into`` an existing
folder or from a read-only set, calls after ``close`` and calls in a forked
child, where an inherited ``VectorFile`` must raise ``StoreClosedError`` and its
release must not write. A case asserts with ``expect``/``in_child``; their
``AssertionError`` is not an allowed outcome.
"""

import json
import subprocess
import sys
import textwrap

# One statement per line. Names: K kernels, A aligned, MF mapped_file, I id_index,
# V vector_file, F fileset; T a fresh temp folder; M (100, 8) and Q (2, 8)
# float32; M_ro a read-only copy; VF an open VectorFile (dimension 4, holding
# "a", written since its last checkpoint); RO a read-only VectorFile (holding
# "a"). Helpers: damaged(name, file, how) makes a file set holding "a" and
# damages one file ("truncate", "zero", "garbage", "delete", "directory");
# expect(E, fn, ...) asserts fn raises E; in_child(fn) asserts fn raises
# StoreClosedError in a forked child; child_closes(vf) closes vf in a forked
# child and asserts the parent's file set did not change.
CASES = r"""
K.topk(M, Q, 3, "dot")
K.topk(M.astype(np.float64), Q, 3, "dot")
K.topk(M, Q.astype(np.float64), 3, "dot")
K.topk(M[:, ::2], Q[:, ::2], 3, "dot")
K.topk(M[::-1], Q, 3, "dot")
K.topk(M[::2], Q, 3, "dot")
K.topk(M, Q[:, ::-1], 3, "dot")
K.topk(M[:0], Q, 3, "dot")
K.topk(M, Q[:0], 3, "dot")
K.topk(M[:, :0], Q[:, :0], 3, "dot")
K.topk(M, Q, 0, "dot")
K.topk(M, Q, -1, "dot")
K.topk(M, Q, 1 << 40, "dot")
K.topk(M, Q, 1 << 62, "cosine")
K.topk(M, Q, 1 << 64, "dot")
K.topk(M, Q, 10**30, "dot")
K.topk(M, Q, 3, "bogus")
K.topk(M, Q, 3, None)
K.topk(M, Q, 3, "l2", skip=np.zeros(3, np.uint8))
K.topk(M, Q, 3, "l2", skip=np.zeros(1000, np.uint8))
K.topk(M, Q, 3, "l2", skip=np.zeros(100, np.float32))
K.topk(M, Q, 3, "l2", skip=np.zeros(100, bool))
K.topk(M, Q, 3, "l2", skip=np.zeros((10, 10), np.uint8))
K.topk(M, Q, 3, "l2", skip=np.ones(100, np.uint8))
K.topk(M, Q, 3, "l2", skip=np.zeros(200, np.uint8)[::2])
K.topk(M, Q, 3, "l2", threads=-1)
K.topk(M, Q, 3, "l2", threads=-(1 << 31))
K.topk(M, Q, 3, "l2", threads=1 << 20)
K.topk(M, Q, 3, "l2", threads=1 << 40)
K.topk(M, Q[0], 3, "l2")
K.topk(M[0], Q, 3, "l2")
K.topk(M, Q[:, :3], 3, "l2")
K.topk(M.reshape(10, 10, 8), Q, 3, "l2")
K.topk(None, Q, 3, "l2")
K.topk(M, None, 3, "l2")
K.topk(M, Q, None, "l2")
K.topk(M, Q, 3.5, "l2")
K.topk(M, Q, True, "l2")
K.topk(np.asfortranarray(M), Q, 3, "l2")
K.topk(M.view(np.int32), Q, 3, "l2")
K.topk(np.frombuffer(M.tobytes() + b"x", np.uint8)[1:].view(np.float32).reshape(100, 8), Q, 3, "l2")
K.topk(M_ro, Q, 3, "l2")
K.topk(M, Q, 3, "l2", skip=np.zeros(100, np.uint8), threads=0)
K.scores(M, Q[0], "dot")
K.scores(M, Q[0], "dot", out=np.empty(3, np.float32))
K.scores(M, Q[0], "dot", out=np.empty(100, np.float64))
K.scores(M, Q[0], "dot", out=np.empty(1000, np.float32)[::2])
K.scores(M, Q[0], "dot", out=np.empty(100, np.float32)[::-1])
K.scores(M, Q[0], "dot", out=M_ro[:, 0].copy().__class__(100))
K.scores(M, Q[0][:3], "dot")
K.scores(M, Q[0][::-1], "dot")
K.scores(M[::-1], Q[0], "dot")
K.scores(M[:0], Q[0], "dot")
K.scores(M[:, :0], Q[0][:0], "cosine")
K.scores(M, Q[0], "x")
K.scores(M, Q, "dot")
K.scores_many(M, Q, "dot")
K.scores_many(M, Q[:, :3], "dot")
K.scores_many(M[::-1], Q[::-1], "cosine")
K.scores_many(M[:0], Q, "l2")
K.scores_many(M, Q[:0], "l2")
K.dot(Q[0], Q[1])
K.dot(Q[0], Q[1][:3])
K.dot(Q[0][::-1], Q[1])
K.dot(Q[0][:0], Q[1][:0])
K.dot(Q[0].astype(np.float64), Q[1])
K.dot(None, Q[1])
K.cosine(np.zeros(8, np.float32), np.zeros(8, np.float32))
K.l2(Q[0], Q[1][:7])
K.set_level("bogus")
K.set_level(None)
K._repeat("dot", Q[0], Q[1], -1)
K._repeat("dot", Q[0], Q[1][:3], 2)
K._repeat("bogus", Q[0], Q[1], 2)
K._read_sum(M, threads=-5)
K._read_sum(M[:, ::2])
K._read_sum(M[:0])
A.AlignedBuffer(0)
A.AlignedBuffer(-1)
A.AlignedBuffer(1 << 62)
A.AlignedBuffer(1 << 70)
A.AlignedBuffer(10, alignment=3)
A.AlignedBuffer(10, alignment=0)
A.AlignedBuffer(10, alignment=-64)
A.AlignedBuffer(10, alignment=1)
A.AlignedBuffer(10, alignment=1 << 40)
A.AlignedBuffer(10, alignment=1 << 63)
A.AlignedBuffer(None)
A.AlignedBuffer(10.5)
np.asarray(A.AlignedBuffer(0))
memoryview(A.AlignedBuffer(0)).tobytes()
A.aligned_empty(-1)
A.aligned_empty((1 << 40, 1 << 40))
A.aligned_empty((1 << 62,), np.float64)
A.aligned_empty((3, -1))
A.aligned_empty(0)
A.aligned_empty(5, object)
A.aligned_empty(5, "U10")
A.aligned_zeros((2, 3), np.float32)
A.aligned_zeros((1 << 31, 1 << 31, 1 << 31))
A.aligned_empty(5, None)
A.aligned_empty("x")
MF.MappedFile(T + "/mf0", create=True, size=0)
MF.MappedFile(T + "/mf1", create=True, size=-1)
MF.MappedFile(T + "/mf2", create=True, size=1 << 62)
MF.MappedFile(T + "/mf3", create=True, size=100, reserve=10)
MF.MappedFile(T + "/mf4", create=True, size=100, reserve=-1)
MF.MappedFile(T + "/mf5", create=True, size=100, reserve=1 << 62)
MF.MappedFile(T + "/missing")
MF.MappedFile(T)
MF.MappedFile("/dev/null")
MF.MappedFile(T + "/\udc80bad", create=True, size=10)
MF.MappedFile(T + "/nul\0x", create=True, size=10)
MF.MappedFile(b"/tmp/xx-bytes-mf", create=True, size=10)
MF.MappedFile(None)
f = MF.MappedFile(T + "/g1", create=True, size=100); f.grow(-1)
f = MF.MappedFile(T + "/g2", create=True, size=100); f.grow(10)
f = MF.MappedFile(T + "/g3", create=True, size=100); f.grow(1 << 62)
f = MF.MappedFile(T + "/g4", create=True, size=100); f.pread(-1, 10)
f = MF.MappedFile(T + "/g5", create=True, size=100); f.pread(90, 100)
f = MF.MappedFile(T + "/g6", create=True, size=100); f.pread(0, -1)
f = MF.MappedFile(T + "/g7", create=True, size=100); f.pread(1 << 62, 1 << 62)
f = MF.MappedFile(T + "/g8", create=True, size=100); f.pread(0, 1 << 62)
f = MF.MappedFile(T + "/g9", create=True, size=100); f.sync(50, 100)
f = MF.MappedFile(T + "/g10", create=True, size=100); f.sync(-1)
f = MF.MappedFile(T + "/g11", create=True, size=100); f.sync(1 << 62, 1 << 62)
f = MF.MappedFile(T + "/g12", create=True, size=100); f.flush(0, -5)
f = MF.MappedFile(T + "/g13", create=True, size=100); f.advise("bogus")
f = MF.MappedFile(T + "/g14", create=True, size=100); f.advise("dontneed", 1 << 62, 10)
f = MF.MappedFile(T + "/g15", create=True, size=100); f.advise("willneed", -1)
f = MF.MappedFile(T + "/g16", create=True, size=100); f.close(); f.pread(0, 10)
f = MF.MappedFile(T + "/g17", create=True, size=100); f.close(); f.grow(200)
f = MF.MappedFile(T + "/g18", create=True, size=100); f.close(); f.sync()
f = MF.MappedFile(T + "/g19", create=True, size=100); f.close(); memoryview(f)
f = MF.MappedFile(T + "/g20", create=True, size=100); f.close(); f.close(); f.file_size(); f.fsync()
f = MF.MappedFile(T + "/g21", create=True, size=100); m = memoryview(f); f.close(); m[99]
f = MF.MappedFile(T + "/g22", create=True, size=100); m = np.frombuffer(f, np.uint8); f.grow(1 << 20); f.close(); int(m.sum())
f = MF.MappedFile(T + "/g23", create=True, size=100); f.close(); MF.MappedFile(T + "/g23", read_only=True).grow(200)
f = MF.MappedFile(T + "/g24", create=True, size=100); f.close(); g = MF.MappedFile(T + "/g24", read_only=True); m = memoryview(g); m[0] = 1
f = MF.MappedFile(T + "/g25", create=True, size=8192); os.truncate(T + "/g25", 10); f.pread(4096, 100)
f = MF.MappedFile(T + "/g26", create=True, size=8192); os.truncate(T + "/g26", 10); f.grow(16384); bytes(memoryview(f)[5000:5010])
f = MF.MappedFile(T + "/g27", create=True, size=8192); f.sync(); f.flush(); f.advise("sequential"); f.advise("random"); f.advise("normal")
I.scan_ids(None)
I.scan_ids(("a", "b"))
I.scan_ids("abc")
I.scan_ids(["a", 3, None])
I.scan_ids(["a", "a", "a"])
I.scan_ids(["\ud800", "é", ""])
I.scan_ids(["abc"], -5)
I.scan_ids(["abc"], 1 << 70)
I.scan_ids(["x" * 5000] * 3, 1 << 62)
I.scan_ids([str(i) for i in range(100000)] + ["7"])
I.hash_id("\ud800")
I.hash_id(None)
I.hash_id(memoryview(b"abc"))
I.hash_id(b"x" * 10000)
V.VectorFile.create(T + "/v0", 0)
V.VectorFile.create(T + "/v1", 65537)
V.VectorFile.create(T + "/v2", -1)
V.VectorFile.create(T + "/v3", 1 << 40)
V.VectorFile.create(T + "/v4", 4, capacity=-1)
V.VectorFile.create(T + "/v5", 4, capacity=0)
V.VectorFile.create(T + "/v6", 4, capacity=1 << 40)
V.VectorFile.create(T + "/v7", 4, capacity=(1 << 32) - 1)
V.VectorFile.create(T + "/v8", 65536, capacity=(1 << 31))
V.VectorFile.create(T + "/v9", 4, hash_mask=-1)
V.VectorFile.create(T + "/v10", None)
V.VectorFile.create(T + "/v11", 4.5)
V.VectorFile.create(None, 4)
V.VectorFile.create(T + "/\0", 4)
V.VectorFile.create("/proc/nope/x", 4)
V.VectorFile.open(T + "/nothing")
V.VectorFile.open(T)
VF.put("a", np.ones(4, np.float32)); VF.put("a", np.ones(3, np.float32))
VF.put("a", np.ones(5, np.float32))
VF.put("a", np.ones((1, 4), np.float32))
VF.put("a", np.ones(4, np.float64))
VF.put("a", np.ones(8, np.float32)[::2])
VF.put("a", np.ones(4, np.float32)[::-1])
VF.put("a", [1, 2, 3, 4])
VF.put("a", None)
VF.put("a", "abcd")
VF.put(5, np.ones(4, np.float32))
VF.put(None, np.ones(4, np.float32))
VF.put("", np.ones(4, np.float32))
VF.put("x" * 1025, np.ones(4, np.float32))
VF.put("x" * 100000, np.ones(4, np.float32))
VF.put("\ud800", np.ones(4, np.float32))
VF.put(b"a", np.ones(4, np.float32))
VF.put("a", np.full(4, np.nan, np.float32)); VF.get("a")
VF.update("missing", np.ones(4, np.float32))
VF.update("a", np.ones(3, np.float32))
VF.put_batch(["a", "b"], np.ones((3, 4), np.float32))
VF.put_batch(["a", "b"], np.ones((2, 3), np.float32))
VF.put_batch(["a", "b"], np.ones((2, 4), np.float64))
VF.put_batch(["a", "b"], np.ones((2, 8), np.float32)[:, ::2])
VF.put_batch(["a", "b"], np.ones((2, 4), np.float32)[::-1])
VF.put_batch(["a", 3], np.ones((2, 4), np.float32))
VF.put_batch(["a", "\ud800"], np.ones((2, 4), np.float32))
VF.put_batch(["a", ""], np.ones((2, 4), np.float32))
VF.put_batch("ab", np.ones((2, 4), np.float32))
VF.put_batch(None, None)
VF.put_batch([], np.ones((0, 4), np.float32))
VF.put_batch([], np.ones((0, 3), np.float32))
VF.put_batch(["a"], np.ones(4, np.float32))
VF.put_batch(["a"] * 3, np.ones((3, 4), np.float32))
VF.put_batch(iter(["a"]), np.ones((1, 4), np.float32))
VF.get(5)
VF.get("\ud800")
VF.get("x" * 5000)
VF.get(None)
VF.get_batch(["a", 5])
VF.get_batch(["\ud800"])
VF.get_batch(None)
VF.get_batch("abc")
VF.delete(5)
VF.delete("\ud800")
5 in VF
"\ud800" in VF
VF.search(np.ones((1, 4), np.float32), 0, "l2")
VF.search(np.ones((1, 4), np.float32), -1, "l2")
VF.search(np.ones((1, 4), np.float32), 1 << 62, "l2")
VF.search(np.ones((1, 4), np.float32), 1 << 70, "l2")
VF.search(np.ones((1, 3), np.float32), 3, "l2")
VF.search(np.ones(4, np.float32), 3, "l2")
VF.search(np.ones((1, 4), np.float64), 3, "l2")
VF.search(np.ones((1, 4), np.float32), 3, "bogus")
VF.search(np.ones((1, 4), np.float32), 3, "l2", threads=-1)
VF.search(np.ones((1, 4), np.float32), 3, "l2", threads=1 << 40)
VF.search(np.ones((0, 4), np.float32), 3, "l2")
VF.search(np.ones((2, 8), np.float32)[:, ::2], 3, "l2")
VF.search(None, 3, "l2")
VF.compact_into(T + "/vf-c"); VF.get("a")
VF.compact_into(None)
VF.compact_into(T + "/vf-existing-file")
VF.close(); VF.get("a")
VF.close(); VF.put("a", np.ones(4, np.float32))
VF.close(); VF.put_batch(["a"], np.ones((1, 4), np.float32))
VF.close(); VF.delete("a")
VF.close(); VF.ids()
VF.close(); VF.search(np.ones((1, 4), np.float32), 3, "l2")
VF.close(); VF.verify()
VF.close(); VF.compact_into(T + "/after-close")
VF.close(); VF.checkpoint(); VF.flush()
VF.close(); len(VF); "a" in VF; VF.recovery_report
VF.close(); VF.get_batch(["a"])
V.VectorFile.create(T + "/v12", 4, first_generation=0)
V.VectorFile.create(T + "/v13", 4, first_generation=-1)
V.VectorFile.create(T + "/v14", 4, first_generation=1 << 62)
V.VectorFile.create(T + "/v15", 4, first_generation=(1 << 62) - 1)
V.VectorFile.create(T + "/v16", 4, first_generation=None)
V.VectorFile.create(T + "/vf", 4)
V.VectorFile.create(T + "/vf-existing-file", 4)
V.VectorFile.open(T + "/nothing", read_only=True)
V.VectorFile.open(T, read_only=True)
V.VectorFile.open(T + "/vf-existing-file", read_only=True)
V.VectorFile.open(None, read_only=True)
V.VectorFile.open(T + "/\0", read_only=True)
V.VectorFile.open(T + "/ro", read_only=None).get("a")
V.VectorFile.open(T + "/ro", read_only=True, hash_mask=-1)
V.VectorFile.open(T + "/ro", read_only=True, hash_mask=1 << 64)
V.VectorFile.open(T + "/ro", read_only=True, hash_mask=3).get("a")
V.VectorFile.open(T + "/ro", read_only=True, check_reads=False).get("a")
V.VectorFile.open(damaged("d0", "vectors.jvdb", "truncate"), read_only=True)
V.VectorFile.open(damaged("d1", "vectors.jvdb", "zero"), read_only=True)
V.VectorFile.open(damaged("d2", "vectors.jvdb", "garbage"), read_only=True)
V.VectorFile.open(damaged("d3", "slots.jvsl", "truncate"), read_only=True)
V.VectorFile.open(damaged("d4", "index.jvix", "zero"), read_only=True)
V.VectorFile.open(damaged("d5", "index.jvix", "truncate"), read_only=True)
V.VectorFile.open(damaged("d6", "ids.jvid", "truncate"), read_only=True)
V.VectorFile.open(damaged("d7", "ids.jvid", "delete"), read_only=True)
V.VectorFile.open(damaged("d8", "readers.jvrd", "delete"), read_only=True).get("a")
V.VectorFile.open(damaged("d9", "readers.jvrd", "garbage"), read_only=True).get("a")
V.VectorFile.open(damaged("d10", "readers.jvrd", "truncate"), read_only=True).get("a")
V.VectorFile.open(damaged("d11", "index.jvix", "garbage"), read_only=True).get("a")
V.VectorFile.open(damaged("d12", "slots.jvsl", "zero"), read_only=True).search(np.ones((1, 4), np.float32), 3, "l2")
V.VectorFile.open(damaged("d13", "vectors.jvdb", "zero")).get("a")
V.VectorFile.open(damaged("d14", "index.jvix", "delete"))
V.VectorFile.open(damaged("d15", "readers.jvrd", "directory"), read_only=True)
V.VectorFile.open(damaged("d16", "readers.jvrd", "directory"))
V.VectorFile.open(damaged("d17", "slots.jvsl", "directory"), read_only=True)
V.VectorFile.open(damaged("d18", "ids.jvid", "directory"))
W2 = V.VectorFile.open(T + "/vf"); W2.put("b", np.ones(4, np.float32)); W2.close(); VF.put("c", np.ones(4, np.float32)); VF.checkpoint(); VF.close(); V.VectorFile.open(T + "/vf").verify()
VF.reserve(None)
VF.reserve(5)
VF.reserve([5])
VF.reserve(["a", None])
VF.reserve([""])
VF.reserve(["\ud800"])
VF.reserve(["x" * 1025])
VF.reserve([b"a"])
VF.reserve("abc")
VF.reserve(iter(["a", "b"]))
VF.reserve([])
VF.reserve(["a"] * 100000)
VF.reserve([f"r{i}" for i in range(100000)]); VF.put_batch([f"r{i}" for i in range(100000)], np.ones((100000, 4), np.float32)); VF.verify()
RO.reserve(["a"])
VF.close(); VF.reserve(["a"])
VF.close(); VF.capacity
VF.close(); VF.high_water
VF.close(); VF.generation
VF.close(); VF.update("a", np.ones(4, np.float32))
VF.close(); repr(VF); VF.closed; VF.read_only; VF.failed; VF.dimension
RO.close(); RO.get("a")
RO.close(); RO.get_batch(["a"])
RO.close(); RO.ids()
RO.close(); len(RO)
RO.close(); RO.search(np.ones((1, 4), np.float32), 3, "l2")
RO.close(); RO.verify()
RO.close(); RO.generation
RO.close(); RO.close(); RO.flush(); RO.checkpoint()
RO.capacity; RO.high_water; RO.generation; RO.read_only; RO.recovery_report
F.mark_moved(None)
F.mark_moved(5)
F.mark_moved("")
F.mark_moved(T + "/nothing")
F.mark_moved(T)
F.mark_moved(T + "/vf-existing-file")
F.mark_moved(T + "/\0")
F.mark_moved(T + "/\udc80")
F.mark_moved(b"/nonexistent-jadevec-path")
F.mark_moved(damaged("m0", "vectors.jvdb", "truncate"))
F.mark_moved(damaged("m1", "vectors.jvdb", "zero"))
F.mark_moved(damaged("m2", "vectors.jvdb", "directory"))
F.mark_moved(damaged("m3", "vectors.jvdb", "garbage"))
F.mark_moved(T + "/ro"); F.mark_moved(T + "/ro"); expect(V.FileSetMoved, RO.get, "a")
F.mark_moved(T + "/ro"); expect(V.FileSetMoved, RO.search, np.ones((1, 4), np.float32), 3, "l2")
F.mark_moved(T + "/ro"); expect(V.FileSetMoved, V.VectorFile.open, T + "/ro", read_only=True)
F.mark_moved(T + "/ro"); V.VectorFile.open(T + "/ro")
F.mark_moved(T + "/vf"); VF.put("b", np.ones(4, np.float32)); VF.checkpoint(); VF.get("a"); VF.close(); V.VectorFile.open(T + "/vf", read_only=True).get("a")
F.swap_folders(T + "/nothing", T + "/vf", T + "/old")
F.swap_folders(T + "/ro", T + "/nothing", T + "/old")
F.swap_folders(T + "/nothing", T + "/nothing2", T + "/old")
F.swap_folders(None, T + "/ro", T + "/old")
F.swap_folders(T + "/ro", None, T + "/old")
F.swap_folders(T + "/ro", T + "/ro", T + "/old")
F.swap_folders(T + "/ro", T + "/ro/vectors.jvdb", T + "/old")
F.swap_folders(T + "/ro", T, T + "/old")
F.swap_folders(T + "/\0", T + "/ro", T + "/old")
F.swap_folders(T + "/vf-existing-file", T + "/ro", T + "/old"); RO.get("a")
F.swap_folders(T + "/vf", T + "/ro", T + "/old"); RO.get("a"); VF.put("z", np.ones(4, np.float32)); VF.checkpoint()
VF.compact_into(T + "/ro")
VF.compact_into(T + "/vf")
VF.compact_into(T + "/vf/vectors.jvdb")
VF.compact_into(T + "/deeper/still/c"); VF.close(); V.VectorFile.open(T + "/deeper/still/c").get("a")
VF.compact_into("/proc/jadevec-compact")
VF.compact_into(T + "/\0")
VF.compact_into(5)
RO.compact_into(T + "/ro-c2"); RO.get("a")
VF.compact_into(T + "/c1"); VF.compact_into(T + "/c2")
VF.compact_into(T + "/c3"); VF.put("a", np.ones(4, np.float32))
in_child(lambda: VF.get("a"))
in_child(lambda: VF.put("a", np.ones(4, np.float32)))
in_child(lambda: VF.put_batch(["a"], np.ones((1, 4), np.float32)))
in_child(lambda: VF.reserve(["a"]))
in_child(lambda: VF.delete("a"))
in_child(lambda: VF.get_batch(["a"]))
in_child(lambda: VF.ids())
in_child(lambda: len(VF))
in_child(lambda: VF.search(np.ones((1, 4), np.float32), 3, "l2"))
in_child(lambda: VF.verify())
in_child(lambda: VF.checkpoint())
in_child(lambda: VF.flush())
in_child(lambda: VF.compact_into(T + "/child-c"))
in_child(lambda: VF.capacity)
in_child(lambda: RO.get("a"))
in_child(lambda: RO.search(np.ones((1, 4), np.float32), 3, "l2"))
in_child(lambda: RO.ids())
in_child(lambda: RO.generation)
child_closes(VF)
child_closes(RO)
VF.close(); in_child(lambda: VF.get("a"))
RO.put("a", np.ones(4, np.float32))
RO.put_batch(["a"], np.ones((1, 4), np.float32))
RO.delete("a")
RO.update("a", np.ones(4, np.float32))
RO.compact_into(T + "/ro-c")
RO.checkpoint(); RO.flush(); RO.verify(); RO.get("a"); RO.search(np.ones((1, 4), np.float32), 2, "l2")
RO.put_batch(["b"], np.ones((1, 4), np.float32))
V.crc32c(None)
V.crc32c(b"abc", -1)
V.crc32c(b"abc", 1 << 40)
V.crc32c(np.ones(3, np.float32)[::2])
V.crc32c("str")
V.VectorFile()
V.VectorFile.__new__(V.VectorFile).get("a")
V.VectorFile.__new__(V.VectorFile).put("a", np.ones(4, np.float32))
V.VectorFile.__new__(V.VectorFile).close()
V.VectorFile.__new__(V.VectorFile).ids()
V.VectorFile.__new__(V.VectorFile).search(np.ones((1, 4), np.float32), 1, "l2")
V.VectorFile.__new__(V.VectorFile).verify()
len(V.VectorFile.__new__(V.VectorFile))
MF.MappedFile.__new__(MF.MappedFile).pread(0, 1)
memoryview(MF.MappedFile.__new__(MF.MappedFile))
MF.MappedFile.__new__(MF.MappedFile).grow(100)
A.AlignedBuffer.__new__(A.AlignedBuffer).nbytes
memoryview(A.AlignedBuffer.__new__(A.AlignedBuffer))
MF.MappedFile()
MF.MappedFile(T + "/nul\0x", create=True, size=10)
V.VectorFile().put("a", np.ones(0, np.float32))
V.VectorFile().checkpoint()
"a" in V.VectorFile()
V.VectorFile().get_batch(["a"])
V.VectorFile().reserve(["a"])
V.VectorFile().capacity
V.VectorFile().generation
V.VectorFile().compact_into(T + "/bare-c")
F.crc32c(None)
F.crc32c(b"abc", -1)
F.crc32c(memoryview(b"abcd")[::2])
""".strip().splitlines()

# What a misuse may raise besides a JadevecError: the builtins a Python user
# expects for a wrong type, an impossible size or an OS refusal.
ALLOWED = ("TypeError", "ValueError", "OverflowError", "MemoryError", "BufferError",
           "OSError", "FileNotFoundError", "FileExistsError", "IsADirectoryError",
           "PermissionError", "NotADirectoryError")

WORKER = textwrap.dedent("""
    import faulthandler, json, os, shutil, sys, tempfile
    faulthandler.enable()
    import numpy as np
    import jadevec._core.aligned as A
    import jadevec._core.fileset as F
    import jadevec._core.id_index as I
    import jadevec._core.kernels as K
    import jadevec._core.mapped_file as MF
    import jadevec._core.vector_file as V
    from jadevec.errors import JadevecError, StoreClosedError

    def damaged(name, file, how):
        path = os.path.join(T, name)
        with V.VectorFile.create(path, 4) as vf:
            vf.put("a", np.ones(4, np.float32))
        target = os.path.join(path, file)
        data = open(target, "rb").read()
        if how == "truncate":
            data = data[:len(data) // 2 - 1]
        elif how == "zero":
            data = bytes(min(len(data), 8192)) + data[8192:]
        elif how == "garbage":
            data = bytes((i * 151 + 7) % 256 for i in range(min(len(data), 8192))) + data[8192:]
        os.unlink(target)
        if how == "directory":
            os.mkdir(target)
        elif how != "delete":
            open(target, "wb").write(data)
        return path

    def expect(exc_type, fn, *a, **kw):
        try:
            fn(*a, **kw)
        except exc_type:
            return
        raise AssertionError(f"{fn} did not raise {exc_type.__name__}")

    def in_child(fn):
        pid = os.fork()
        if pid == 0:
            try:
                fn()
                code = 3
            except StoreClosedError:
                code = 0
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status:
            raise AssertionError(f"the child's call did not raise StoreClosedError "
                                 f"(wait status {status})")

    def child_closes(vf):
        before = [open(os.path.join(vf.path, n), "rb").read() for n in F.FILE_NAMES[:4]]
        pid = os.fork()
        if pid == 0:
            try:
                vf.close()
                code = 0
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        after = [open(os.path.join(vf.path, n), "rb").read() for n in F.FILE_NAMES[:4]]
        if status or before != after or vf.closed or vf.get("a") is None:
            raise AssertionError(f"a child's close changed the parent's file set "
                                 f"(wait status {status})")

    cases = json.loads(sys.stdin.read())
    for n in range(int(sys.argv[1]), len(cases)):
        T = tempfile.mkdtemp()
        rng = np.random.default_rng(0)
        M = rng.standard_normal((100, 8)).astype(np.float32)
        M_ro = M.copy()
        M_ro.flags.writeable = False
        Q = rng.standard_normal((2, 8)).astype(np.float32)
        VF = V.VectorFile.create(T + "/vf", 4)
        VF.put("a", np.ones(4, np.float32))
        open(T + "/vf-existing-file", "w").close()
        with V.VectorFile.create(T + "/ro", 4) as ro:
            ro.put("a", np.ones(4, np.float32))
        RO = V.VectorFile.open(T + "/ro", read_only=True)
        print(json.dumps({"start": n}), flush=True)
        try:
            exec(cases[n], dict(globals()))
            res = "ok"
        except JadevecError as e:
            res = "jadevec"
        except Exception as e:
            res = type(e).__name__ + ": " + str(e)[:200]
        for vf in (VF, RO):
            try:
                vf.close()
            except Exception:
                pass  # a case may have damaged or moved it
        shutil.rmtree(T, ignore_errors=True)
        print(json.dumps({"done": n, "res": res}), flush=True)
""")


def test_misuse_of_the_core_never_crashes(tmp_path):
    results: dict[int, str] = {}
    n = 0
    while n < len(CASES):
        proc = subprocess.run([sys.executable, "-c", WORKER, str(n)], input=json.dumps(CASES),
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        current = None
        for line in proc.stdout.splitlines():
            msg = json.loads(line)
            if "start" in msg:
                current = msg["start"]
            else:
                results[msg["done"]] = msg["res"]
                current = None
        if current is None:
            assert proc.returncode == 0, proc.stderr[-2000:]
            break
        results[current] = f"CRASH rc={proc.returncode}: {proc.stderr[-500:]}"
        n = current + 1
    bad = {CASES[i]: r for i, r in results.items()
           if r not in ("ok", "jadevec") and r.split(":", 1)[0] not in ALLOWED}
    assert len(results) == len(CASES)
    assert not bad, "\n".join(f"{c}\n    -> {r}" for c, r in bad.items())
