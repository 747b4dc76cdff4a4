"""Every error of the command line: one line on stderr, no traceback, the right exit status.

Exit statuses: 1 a user error, 2 usage, 3 damage. A rejected file stores
nothing (unless ``--skip-invalid``), so each bad-file test also counts 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import environment


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("jadevec: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def docs(here):
    """A store with an empty cosine database ``docs`` of dimension 4; runs commands in-process."""
    assert here("create", "--database", "docs", "--dimension", "4").returncode == 0
    return here


def count(jv, database: str = "docs") -> int:
    done = jv("count", "--database", database)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def lines_file(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = '{"id": "a", "values": [1, 2, 3, 4]}'


# ---------------------------------------------------------------- usage (2)

def test_usage_errors_from_a_real_process(jv):
    done = jv("frobnicate")
    assert done.returncode == 2
    assert "usage:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["create", "--database", "x"], ["count"],
    ["create", "--database", "x", "--dimension", "four"],
    ["query", "--database", "x"], ["query", "--database", "x", "--vector", "[1]",
                                   "--vector-file", "f"],
    ["create", "--database", "x", "--dimension", "3", "--metric", "hamming"],
])
def test_usage_errors_exit_2(here, argv):
    done = here(*argv)
    assert done.returncode == 2
    assert "usage:" in done.stderr and "Traceback" not in done.stderr


def test_help_of_every_command_shows_an_example(jv, here):
    from jadevec.cli._commands import COMMANDS

    assert "example:\n  jadevec count" in jv("count", "--help").stdout
    for name in COMMANDS:
        done = here(name, "--help")
        assert done.returncode == 0
        assert "example:\n  jadevec " + name in done.stdout, name
    assert jv("--version").stdout.strip().startswith("jadevec ")


# ------------------------------------------------------------ user errors (1)

def test_insert_into_a_missing_database_says_how_to_create_it(jv, tmp_path):
    assert jv("create", "--database", "docs", "--dimension", "4").returncode == 0
    source = lines_file(tmp_path / "r.jsonl", GOOD)
    one_line_error(jv("insert", "--database", "nope", "--file", source), 1,
                   "no database named 'nope'", "jadevec create --database nope --dimension N")


def test_a_missing_store_is_a_user_error_and_only_create_makes_one(here, store_dir, tmp_path):
    source = lines_file(tmp_path / "r.jsonl", GOOD)
    for argv in (["count", "--database", "docs"], ["insert", "--database", "docs", "--file",
                                                   source], ["drop", "--database", "docs"],
                 ["verify"], ["compact"]):
        one_line_error(here(*argv), 1, "no store in", "create --database NAME")
    assert not store_dir.exists()
    assert here("list").returncode == 0


def test_a_store_of_another_backend_names_the_backend_to_pass(here, store_dir):
    assert here("create", "--database", "docs", "--dimension", "4",
                backend="mmap").returncode == 0
    before = sorted(p.name for p in store_dir.iterdir())
    for argv in (["list"], ["count", "--database", "docs"], ["compact"]):
        one_line_error(here(*argv), 1, "made by the 'mmap' backend, not 'hybrid'",
                       "--backend mmap")
    assert sorted(p.name for p in store_dir.iterdir()) == before  # the probe wrote nothing
    assert here("count", "--database", "docs", backend="mmap").stdout.strip() == "0"


@pytest.mark.parametrize("lines,fragment", [
    ([GOOD, '{"id": "b", "values": [1, 2, 3, 4]', GOOD.replace('"a"', '"c"')],
     "line 2: malformed JSON"),
    ([GOOD, '{"id": "b", "values": [1, 2, 3]}'], "line 2: \"values\" has 3 numbers but the "
                                                 "database's dimension is 4"),
    ([GOOD, '{"id": "b", "values": [1, NaN, 3, 4]}'], "line 2: \"values\"[1] is nan"),
    ([GOOD, '{"id": "b", "values": [1, 1e39, 3, 4]}'], "line 2: \"values\"[1] is inf"),
    ([GOOD, '{"id": "b", "values": [3e19, 3e19, 1, 1]}'], "line 2: the squared norm"),
    ([GOOD, '{"id": "b", "values": [1, 2, 3, 4], "metadata": {"x": NaN}}'], "line 2: \"metadata\""),
    ([GOOD, '{"values": [1, 2, 3, 4]}'], "line 2: the \"id\" is missing"),
    ([GOOD, '{"id": "' + "x" * 1025 + '", "values": [1, 2, 3, 4]}'], "line 2: the \"id\" is not"),
    ([GOOD, '{"id": 7, "values": [1, 2, 3, 4]}'], "line 2: the \"id\" must be a string"),
    ([GOOD, '{"id": "b"}'], "line 2: the \"values\" are missing"),
    ([GOOD, '{"id": "b", "values": [1, "x", 3, 4]}'], "line 2: \"values\"[1] is not a number"),
    ([GOOD, '{"id": "b", "values": [0, 0, 0, 0]}'], "line 2: every value is zero"),
    ([GOOD, '{"id": "b", "values": [1, 2, 3, 4], "metadata": 5}'], "\"metadata\" must be an"),
    ([GOOD, '{"id": "b", "vector": [1, 2, 3, 4]}'], "line 2: unknown key 'vector'"),
    (["", GOOD, "", GOOD], "the id 'a' appears twice (line 2 and line 4)"),
])
def test_a_bad_json_lines_file_names_the_line_and_stores_nothing(docs, tmp_path, lines,
                                                                  fragment):
    source = lines_file(tmp_path / "bad.jsonl", *lines)
    one_line_error(docs("insert", "--database", "docs", "--file", source), 1, fragment)
    assert count(docs) == 0


def test_a_bad_row_late_in_a_long_file_stores_nothing(docs, tmp_path):
    rows = [f'{{"id": "v{i}", "values": [1, 2, 3, {i}]}}' for i in range(5000)]
    rows[4321] = '{"id": "v4321", "values": [1, 2, 3]}'
    source = lines_file(tmp_path / "long.jsonl", *rows)
    one_line_error(docs("batch-insert", "--database", "docs", "--file", source,
                        "--batch-size", "100"), 1, "line 4322")
    assert count(docs) == 0


def test_a_bad_json_array_names_the_item(docs, tmp_path):
    source = tmp_path / "rows.json"
    source.write_text(json.dumps([{"id": "a", "values": [1, 2, 3, 4]},
                                  {"id": "b", "values": [1, 2]}]))
    one_line_error(docs("insert", "--database", "docs", "--file", source), 1, "item 2")
    source.write_text('[{"id": "a", "values": [1, 2, 3, 4]},\n {"id": "b", ]')
    one_line_error(docs("insert", "--database", "docs", "--file", source), 1,
                   "line 2: malformed JSON")
    assert count(docs) == 0


def test_skip_invalid_stores_the_good_rows_and_counts_the_rest(docs, tmp_path):
    source = lines_file(tmp_path / "mixed.jsonl", GOOD, '{"id": "b", "values": [1]}',
                        'not json', '{"id": "c", "values": [4, 3, 2, 1]}', GOOD)
    done = docs("insert", "--database", "docs", "--file", source, "--skip-invalid")
    assert done.returncode == 0, done.stderr
    assert "stored 2 rows" in done.stdout and "skipped 3 invalid rows" in done.stdout
    assert "line 2" in done.stderr and "line 3" in done.stderr
    assert "line 5: the id 'a' already appeared on line 1" in done.stderr
    assert count(docs) == 2


def test_a_bad_npy_file_names_the_row(docs, tmp_path):
    vectors = np.ones((20, 4), dtype=np.float32)
    vectors[13, 2] = np.nan
    np.save(tmp_path / "nan.npy", vectors)
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "nan.npy"), 1,
                   "row 13")
    np.save(tmp_path / "wide.npy", np.ones((3, 5), dtype=np.float32))
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "wide.npy"), 1,
                   "the rows have 5 values but the database's dimension is 4")
    np.save(tmp_path / "ok.npy", np.ones((3, 4), dtype=np.float32))
    ids = lines_file(tmp_path / "ids.txt", "x", "y")
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "ok.npy",
                        "--ids", ids), 1, "has 2 ids but", "has 3 rows")
    ids = lines_file(tmp_path / "ids.txt", "x", "y", "x")
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "ok.npy",
                        "--ids", ids), 1, "the id 'x' appears twice (row 0 and row 2)")
    ids = lines_file(tmp_path / "ids.txt", "x", "y", "z", "w")
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "ok.npy",
                        "--ids", ids), 1, "more ids than the 3 rows")
    assert count(docs) == 0


def test_unreadable_inputs(docs, tmp_path):
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "absent.json"), 1,
                   "No such file or directory", "absent.json")
    (tmp_path / "empty.jsonl").write_text("\n")
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "empty.jsonl"), 1,
                   "the file is empty")
    (tmp_path / "text.txt").write_text("hello\n")
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "text.txt"), 1,
                   "not a JSON array, JSON lines or .npy file")
    one_line_error(docs("insert", "--database", "docs", "--file",
                        lines_file(tmp_path / "r.jsonl", GOOD), "--ids", tmp_path / "x"), 1,
                   "--ids is only for .npy files")
    one_line_error(docs("batch-insert", "--database", "docs", "--file", tmp_path / "r.jsonl",
                        "--batch-size", "0"), 1, "--batch-size must be at least 1")


def test_commands_on_missing_things(docs):
    one_line_error(docs("get", "--database", "docs", "--id", "nope"), 1,
                   "no vector with id 'nope'")
    one_line_error(docs("delete", "--database", "docs", "--id", "nope"), 1,
                   "nothing was deleted")
    one_line_error(docs("count", "--database", "other"), 1, "no database named 'other'",
                   "it holds: docs")
    one_line_error(docs("drop", "--database", "other"), 1, "no database named 'other'")
    one_line_error(docs("create", "--database", "DOCS", "--dimension", "3"), 1, "exists")
    one_line_error(docs("create", "--database", "bad name", "--dimension", "3"), 1, "name")
    one_line_error(docs("create", "--database", "x", "--dimension", "0"), 1, "dimension")
    one_line_error(docs("query", "--database", "docs", "--vector", "[1, 2"), 1,
                   "--vector is not JSON")
    one_line_error(docs("query", "--database", "docs", "--vector", "[1, 2]"), 1, "4")
    one_line_error(docs("query", "--database", "docs", "--vector", "[1, 2, 3, 4]", "-k", "0"),
                   1, "-k must be at least 1")
    one_line_error(docs("list", backend="nosuch"), 1, "nosuch")


def test_debug_prints_the_traceback(jv):
    assert jv("create", "--database", "docs", "--dimension", "4").returncode == 0
    done = jv("--debug", "count", "--database", "other")
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("jadevec: error: ")


def test_a_store_locked_by_another_writer_names_its_pid(jv, store_dir, tmp_path):
    docs = jv
    assert jv("create", "--database", "docs", "--dimension", "4").returncode == 0
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, jadevec; s = jadevec.open(sys.argv[1]); print('open', flush=True); "
         "sys.stdin.read()", str(store_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment())
    try:
        assert holder.stdout.readline().strip() == "open"
        line = one_line_error(docs("drop", "--database", "docs"), 1,
                              f"open for writing by process {holder.pid}", "run the command "
                              "again")
        assert "read_only" not in line
        assert count(docs) == 0  # readers still work beside the writer
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert docs("drop", "--database", "docs").returncode == 0


# --------------------------------------------------------------- damage (3)

def test_verify_reports_damage_with_exit_3(jv, store_dir, tmp_path):
    docs = jv
    assert jv("create", "--database", "docs", "--dimension", "4").returncode == 0
    vectors = np.random.default_rng(5).standard_normal((2000, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    assert docs("insert", "--database", "docs", "--file", tmp_path / "v.npy").returncode == 0
    assert docs("verify").returncode == 0
    files = sorted((p for p in (store_dir / "vectors").rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)
    target = files[-1]
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    target.write_bytes(bytes(data))
    time.sleep(0.01)
    done = docs("verify")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("jadevec: ")
