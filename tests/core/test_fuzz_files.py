"""Corruption fuzzing of the on-disk files (format version 2).

The mutants run in worker subprocesses (``fuzz_harness.py``), so a SIGSEGV,
SIGBUS or abort fails a mutant instead of killing pytest. Every mutant is
seeded; a failure names its number, rerun it with
``python tests/core/fuzz_harness.py --seed S --mutant N --verbose``.

The regressions below damage one field of a real file set, located through
the format document's tables (the helpers of ``fuzz_harness.py``), each in a
subprocess; the last group are damage the fuzzer once found mishandled.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HARNESS = Path(__file__).with_name("fuzz_harness.py")


def _fuzz(*args: str, timeout: float) -> dict:
    proc = subprocess.run([sys.executable, str(HARNESS), *args], capture_output=True,
                          timeout=timeout)
    assert proc.stdout, proc.stderr.decode(errors="replace")[-3000:]
    return json.loads(proc.stdout)


def _report(out: dict) -> str:
    lines = []
    for f in out["failures"][:10]:
        lines.append(f"mutant {f['done']} ({f.get('template')}, {f.get('class')}, "
                     f"{f.get('desc', '')}):")
        lines.extend("    " + p[:1500] for p in f["problems"][:3])
    return "\n".join(lines)


def test_fuzz_every_class_quick():
    """240 mutants over every mutation class, both backends, clean and killed stores."""
    out = _fuzz("--seed", "1", "--count", "240", "--jobs", str(min(4, os.cpu_count() or 1)),
                "--timeout", "15", timeout=300)
    assert out["mutants"] == 240
    assert len(out["per_class"]) >= 20
    assert not out["failures"], _report(out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_fuzz_sweep(seed):
    out = _fuzz("--seed", str(seed), "--count", "3000", timeout=3600)
    assert out["mutants"] == 3000
    assert not out["failures"], _report(out)


# -- regressions found by the fuzzer, each checked in a subprocess ------------------

# Prepended to every isolated script: the format helpers, a file set at P holding
# "v0".."v9" (dimension 4), and np, VectorFile, crc32c, CorruptionError.
PRELUDE = f"""
import os, struct, sys
import numpy as np
sys.path.insert(0, {str(HARNESS.parent)!r})
import fuzz_harness as h
from jadevec._core.vector_file import VectorFile, FileSetMoved, crc32c, mark_moved
from jadevec.errors import CorruptionError, JadevecError, StoreClosedError

def make(p, n=10):
    with VectorFile.create(p, 4) as vf:
        vf.put_batch([f"v{{i}}" for i in range(n)],
                     np.arange(4 * n, dtype=np.float32).reshape(n, 4))

def read(p, name):
    return bytearray(open(os.path.join(p, name), "rb").read())

def write(p, name, data):
    open(os.path.join(p, name), "wb").write(bytes(data))

def live_entries(p):
    index = read(p, "index.jvix")
    newest, _ = h._commits(read(p, "vectors.jvdb"))
    offs = h._entry_offsets(index, h._page_map(index, newest))
    return index, [o for o in offs if h._u(index, o + 14, 2) == 1]
"""


def _run_isolated(code: str, tmp_path: Path, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, "-c", PRELUDE + code], capture_output=True,
                          timeout=timeout, cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode()


def test_compaction_refuses_an_entry_whose_slot_is_past_the_file(tmp_path):
    """compact_into must check an index entry's slot before it reads the row."""
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
index, live = live_entries(p)
struct.pack_into("<I", index, live[0] + 8, 1 << 20)  # slot far past the mapping
h._seal(index, live[0], 28)
write(p, "index.jvix", index)
vf = VectorFile.open(p)
try:
    vf.compact_into({str(tmp_path / 'out')!r})
except CorruptionError as exc:
    assert "index.jvix" in str(exc) or "slots.jvsl" in str(exc), exc
    print("refused")
"""
    assert "refused" in _run_isolated(code, tmp_path)
    assert not (tmp_path / "out").exists()


def test_compaction_refuses_a_damaged_vector(tmp_path):
    """A row whose checksum fails must not be copied into a fresh, valid-looking set."""
    from jadevec._core.vector_file import VectorFile
    from jadevec.errors import CorruptionError

    p = tmp_path / "set"
    with VectorFile.create(p, 4) as vf:
        vf.put("a", np.ones(4, np.float32))
    with open(p / "vectors.jvdb", "r+b") as f:
        f.seek(4096)
        f.write(b"\x00\x00\x80\x7f")
    vf = VectorFile.open(p)
    with pytest.raises(CorruptionError, match="vector checksum"):
        vf.compact_into(tmp_path / "out")
    vf.close()


@pytest.mark.parametrize("field,value", [
    ("table_size", 1 << 62), ("table_size", 1 << 41), ("table_size", 96),
    ("index_offset", 1 << 62), ("index_offset", 4097), ("high_water", 1 << 31),
    ("ids_end", 1 << 62), ("capacity", (1 << 32) - 1), ("dimension", 16),
    ("row_stride", 0), ("data_offset", 0),
])
def test_open_refuses_a_commit_field_out_of_range(tmp_path, field, value):
    """A commit record whose CRCs match but whose fields do not: CorruptionError, both modes."""
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
vec = read(p, "vectors.jvdb")
newest, _ = h._commits(vec)
off, size = next((o, s) for o, s, n in h.COMMIT_FIELDS if n == {field!r})
for base in (0, 2048):
    h._put(vec, base + off, size, {value!r})
    h._seal_commit(vec, base)
write(p, "vectors.jvdb", vec)
for ro in (True, False):
    try:
        VectorFile.open(p, read_only=ro)
    except CorruptionError as exc:
        print("refused", ro)
"""
    out = _run_isolated(code, tmp_path)
    assert "refused True" in out and "refused False" in out


def test_a_page_map_naming_the_header_page_is_refused(tmp_path):
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
vec, index = read(p, "vectors.jvdb"), read(p, "index.jvix")
newest, _ = h._commits(vec)
m = h._page_map(index, newest)
m[0] = 0
struct.pack_into(f"<{{len(m)}}I", index, newest["index_offset"], *m)
h._put(vec, newest["base"] + 104, 4, crc32c(struct.pack(f"<{{len(m)}}I", *m)))
h._seal_commit(vec, newest["base"])
write(p, "vectors.jvdb", vec)
write(p, "index.jvix", index)
for ro in (True, False):
    try:
        VectorFile.open(p, read_only=ro)
    except CorruptionError as exc:
        assert "index.jvix" in str(exc), exc
        print("refused", ro)
"""
    out = _run_isolated(code, tmp_path)
    assert "refused True" in out and "refused False" in out


def test_a_static_header_of_another_set_is_refused(tmp_path):
    """set_id ties the five files together: a file of another set is CorruptionError."""
    code = f"""
p, q = {str(tmp_path / 'a')!r}, {str(tmp_path / 'b')!r}
make(p)
make(q)
for name in ("slots.jvsl", "index.jvix", "ids.jvid"):
    os.replace(os.path.join(q, name), os.path.join(p, name))
    for ro in (True, False):
        try:
            VectorFile.open(p, read_only=ro)
        except CorruptionError as exc:
            assert name in str(exc) and "set_id" in str(exc), exc
            print("refused", name, ro)
    break
"""
    out = _run_isolated(code, tmp_path)
    assert "refused slots.jvsl True" in out and "refused slots.jvsl False" in out


def test_a_damaged_reader_table_is_rewritten(tmp_path):
    """readers.jvrd holds no durable state: garbage in it must not stop a reader or a writer."""
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
write(p, "readers.jvrd", bytes(range(256)) * 32)
r = VectorFile.open(p, read_only=True)
w = VectorFile.open(p)
w.put("new", np.ones(4, np.float32))
w.checkpoint()
assert r.get("new").tolist() == [1, 1, 1, 1]
w.close()
r.close()
print("ok")
"""
    assert "ok" in _run_isolated(code, tmp_path)


def test_a_killed_writer_loses_nothing_it_acknowledged(tmp_path):
    """A writer that dies after a checkpoint: the next writer replays its slot records."""
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
pid = os.fork()
if pid == 0:
    vf = VectorFile.open(p)
    vf.put("a", np.full(4, 1, np.float32))
    vf.checkpoint()
    vf.put_batch(["b", "c"], np.full((2, 4), 2, np.float32))
    vf.delete("v3")
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
r = VectorFile.open(p, read_only=True)
assert r.get("a") is not None and r.get("b") is None  # the newest commit
w = VectorFile.open(p)
assert w.recovery_report["recovered"], w.recovery_report
assert w.get("b").tolist() == [2, 2, 2, 2] and w.get("v3") is None
w.close()
assert r.get("b").tolist() == [2, 2, 2, 2] and r.get("v3") is None
r.close()
print("ok")
"""
    assert "ok" in _run_isolated(code, tmp_path)


def test_a_forked_child_gets_store_closed_error(tmp_path):
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
w, r = VectorFile.open(p), VectorFile.open(p, read_only=True)
pid = os.fork()
if pid == 0:
    code = 0
    for fn in (lambda: w.get("v1"), lambda: r.get("v1"), lambda: w.put("x", np.ones(4)),
               w.checkpoint, r.ids):
        try:
            fn()
            code = 1
        except StoreClosedError:
            pass
    w.close()
    r.close()
    os._exit(code)
assert os.waitpid(pid, 0)[1] == 0
assert w.get("v1") is not None and r.get("v1") is not None
w.close()
r.close()
print("ok")
"""
    assert "ok" in _run_isolated(code, tmp_path)


def test_a_set_marked_moved_raises_file_set_moved_for_its_reader(tmp_path):
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
r = VectorFile.open(p, read_only=True)
mark_moved(p)
for fn in (lambda: r.get("v1"), lambda: len(r), r.ids, r.verify):
    try:
        fn()
        raise SystemExit("no FileSetMoved")
    except FileSetMoved:
        pass
try:
    VectorFile.open(p, read_only=True)
    raise SystemExit("opened")
except FileSetMoved:
    pass
print("ok")
"""
    assert "ok" in _run_isolated(code, tmp_path)


# -- findings the fuzzer made, kept as regressions ----------------------------------


def test_compaction_refuses_an_entry_whose_hash_is_not_its_ids(tmp_path):
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
index, live = live_entries(p)
h._put(index, live[0], 8, h._u(index, live[0], 8) ^ 1)  # hash off by one bit
h._seal(index, live[0], 28)
write(p, "index.jvix", index)
vf = VectorFile.open(p)
try:
    vf.compact_into({str(tmp_path / 'out')!r})
except CorruptionError:
    print("refused")
else:
    out = VectorFile.open({str(tmp_path / 'out')!r}, read_only=True)
    problems = out.verify()
    assert not problems, problems
    print("refused")
"""
    assert "refused" in _run_isolated(code, tmp_path)


@pytest.mark.parametrize("read_only", [True, False])
@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.parametrize("name", ["vectors.jvdb", "index.jvix", "readers.jvrd"])
def test_a_fifo_or_directory_in_place_of_a_file_is_refused_without_hanging(
        tmp_path, name, kind, read_only):
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
target = os.path.join(p, {name!r})
os.rename(target, target + ".saved")
os.mkfifo(target) if {kind!r} == "fifo" else os.mkdir(target)
try:
    VectorFile.open(p, read_only={read_only!r})
except CorruptionError as exc:
    assert "not a regular file" in str(exc) and {name!r} in str(exc), exc
    print("refused")
os.rmdir(target) if {kind!r} == "directory" else os.unlink(target)
os.rename(target + ".saved", target)
vf = VectorFile.open(p)
assert not vf.verify()
print("intact")
"""
    try:
        out = _run_isolated(code, tmp_path, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"VectorFile.open hung on a {kind} in place of {name}")
    assert "refused" in out and "intact" in out


def _checking_malloc_env() -> dict[str, str] | None:
    """glibc's checking malloc (a write past a block aborts at its free), or None."""
    import glob
    found = sorted(glob.glob("/usr/lib*/*/libc_malloc_debug.so.0")
                   + glob.glob("/lib*/*/libc_malloc_debug.so.0"))
    if not found:
        return None
    return dict(os.environ, MALLOC_CHECK_="3", LD_PRELOAD=found[0])


@pytest.mark.parametrize("read_only", [True, False])
@pytest.mark.parametrize("damage", ["truncated mid-page", "map moved to the tail"])
def test_a_page_map_on_a_partial_last_page_is_refused(tmp_path, damage, read_only):
    """Checked with glibc's checking malloc, so the one-byte overflow aborts at once."""
    env = _checking_malloc_env()
    if env is None:
        pytest.skip("needs glibc's libc_malloc_debug to see a one-byte heap overflow")
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
vec, index = read(p, "vectors.jvdb"), read(p, "index.jvix")
newest, other = h._commits(vec)
raw = struct.pack("<{{}}I".format(newest["table_size"] // 128), *h._page_map(index, newest))
if {damage!r} == "truncated mid-page":
    # a plain truncation that keeps the map's bytes but not its whole page
    del index[newest["index_offset"] + len(raw) + 100:]
else:
    index += bytes(-len(index) % 4096) + raw + bytes(4)
    for c in (newest, other):
        h._put(vec, c["base"] + 24, 8, len(index) - len(raw) - 4)
        h._seal_commit(vec, c["base"])
write(p, "vectors.jvdb", vec)
write(p, "index.jvix", index)
try:
    vf = VectorFile.open(p, read_only={read_only!r})
    vf.verify()
    vf.close()
except CorruptionError as exc:
    assert "index.jvix" in str(exc), exc
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + code], capture_output=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0 and b"ok" in proc.stdout, (
        proc.returncode, proc.stderr.decode(errors="replace")[-2000:])


def test_a_leftover_compact_symlink_does_not_touch_another_database(tmp_path):
    import jadevec
    from jadevec.errors import JadevecError

    with jadevec.open(tmp_path, backend="mmap", flush_interval=0) as s:
        s.create_database("docs", 3).store("a", [1, 2, 3])
        s.create_database("third", 3).store("t", [4, 5, 6])
    dbs = json.loads((tmp_path / "catalog.json").read_text())["databases"]
    docs, third = dbs["docs"]["folder"], dbs["third"]["folder"]
    (tmp_path / "vectors" / f".{docs}.compact").symlink_to(tmp_path / "vectors" / third)
    with jadevec.open(tmp_path, backend="mmap", flush_interval=0) as s:
        try:
            s.get_database("docs").retrieve("a")
        except OSError as exc:
            assert isinstance(exc, JadevecError) or exc.filename, repr(exc)
        assert s.get_database("third").retrieve("t").tolist() == [4, 5, 6]


@pytest.mark.parametrize("next_sequence", [(1 << 64) - 2, (1 << 64) - 1])
def test_a_write_sequence_at_the_top_of_its_range_loses_nothing(tmp_path, next_sequence):
    """Either the writer refuses such a set (a typed error), or a crash loses nothing."""
    code = f"""
p = {str(tmp_path / 'set')!r}
make(p)
vec = read(p, "vectors.jvdb")
for base in (0, 2048):
    h._put(vec, base + 88, 8, {next_sequence})
    h._seal_commit(vec, base)
write(p, "vectors.jvdb", vec)
pid = os.fork()
if pid == 0:
    try:
        vf = VectorFile.open(p)
        vf.put("a", np.full(4, 1, np.float32))
        vf.checkpoint()
        vf.put_batch(["b", "c"], np.full((2, 4), 2, np.float32))
        vf.delete("v3")
    except JadevecError:
        os._exit(1)  # refused: nothing was acknowledged
    os._exit(0)  # crashed: no close
status = os.waitpid(pid, 0)[1]
assert status in (0, 256), status
if status == 0:
    w = VectorFile.open(p)
    got = {{k: w.get(k) for k in ("a", "b", "c", "v3")}}
    assert got["a"] is not None and got["b"] is not None and got["c"] is not None, got
    assert got["v3"] is None, got
    w.close()
print("ok")
"""
    assert "ok" in _run_isolated(code, tmp_path)


@pytest.mark.parametrize("backend", ["mmap", "hybrid"])
def test_a_generation_past_2_63_keeps_metadata_writable(tmp_path, backend):
    import jadevec
    from jadevec.errors import JadevecError

    with jadevec.open(tmp_path, backend=backend, flush_interval=0) as s:
        s.create_database("docs", 3).store("a", [1, 2, 3], metadata={"k": 1})
    (folder,) = os.listdir(tmp_path / "vectors")
    code = f"""
p = {str(tmp_path / 'vectors' / folder)!r}
vec = read(p, "vectors.jvdb")
newest, _ = h._commits(vec)
h._put(vec, newest["base"] + 40, 8, 1 << 63)
h._seal_commit(vec, newest["base"])
write(p, "vectors.jvdb", vec)
print("ok")
"""
    assert "ok" in _run_isolated(code, tmp_path)
    try:
        with jadevec.open(tmp_path, backend=backend, flush_interval=0) as s:
            s.get_database("docs").store("b", [4, 5, 6], metadata={"k": 2})
    except JadevecError:
        return  # refused before anything was written: fine
    with jadevec.open(tmp_path, backend=backend, read_only=True) as s:
        assert s.get_database("docs").get_metadata("b") == {"k": 2}
