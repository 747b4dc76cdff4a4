"""Corruption fuzzing of the on-disk files (research/reliability.md, T5).

The mutants run in worker subprocesses (``fuzz_harness.py``), so a SIGSEGV,
SIGBUS or abort fails a mutant instead of killing pytest. Every mutant is
seeded; a failure names its number, rerun it with
``python tests/core/fuzz_harness.py --seed S --mutant N --verbose``.
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
                timeout=300)
    assert out["mutants"] == 240
    assert len(out["per_class"]) >= 10
    assert not out["failures"], _report(out)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_fuzz_sweep(seed):
    out = _fuzz("--seed", str(seed), "--count", "3000", timeout=3600)
    assert out["mutants"] == 3000
    assert not out["failures"], _report(out)


# -- regressions found by the fuzzer, each checked in a subprocess ------------------


def _run_isolated(code: str, tmp_path: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode()


def test_compaction_refuses_an_entry_whose_slot_is_past_the_file(tmp_path):
    """compact_into used an index entry's slot unchecked: SIGSEGV on a crafted entry."""
    code = f"""
import struct, numpy as np
from jadevec._core.vector_file import VectorFile, crc32c
from jadevec.errors import CorruptionError
p = {str(tmp_path / 'set')!r}
with VectorFile.create(p, 4) as vf:
    vf.put_batch([f"v{{i}}" for i in range(10)], np.ones((10, 4), np.float32))
data = bytearray(open(p + "/index.jvix", "rb").read())
for j in range((len(data) - 64) // 32):
    e = 64 + j * 32
    if struct.unpack_from("<I", data, e + 16)[0] == 1:
        struct.pack_into("<I", data, e + 8, 1 << 20)  # slot far past the mapping
        struct.pack_into("<I", data, e + 28, crc32c(bytes(data[e:e + 28])))
        break
open(p + "/index.jvix", "wb").write(data)
vf = VectorFile.open(p)
try:
    vf.compact_into({str(tmp_path / 'out')!r})
except CorruptionError as exc:
    assert "index.jvix" in str(exc) or "slots.jvsl" in str(exc), exc
    print("refused")
"""
    assert "refused" in _run_isolated(code, tmp_path)


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


def test_read_only_open_of_a_stale_index_with_a_huge_table_size(tmp_path):
    """table_size 2^62 * 32 wrapped to 0 in the read-only recount: SIGSEGV."""
    code = f"""
import struct, numpy as np
from jadevec._core.vector_file import VectorFile, crc32c
from jadevec.errors import CorruptionError
p = {str(tmp_path / 'set')!r}
with VectorFile.create(p, 4) as vf:
    vf.put("a", np.ones(4, np.float32))
h = bytearray(open(p + "/index.jvix", "rb").read(64))
struct.pack_into("<Q", h, 8, 999)       # a stale generation: the open needs recovery
struct.pack_into("<Q", h, 16, 1 << 62)  # table_size
struct.pack_into("<I", h, 60, crc32c(bytes(h[:60])))
with open(p + "/index.jvix", "r+b") as f:
    f.write(h)
try:
    VectorFile.open(p, read_only=True)
except CorruptionError as exc:
    assert "index.jvix" in str(exc), exc
    print("refused")
"""
    assert "refused" in _run_isolated(code, tmp_path)
