"""The command line's less travelled paths: each input form, each error class's
exit status, an interrupted or broken-pipe run, and the odd file a user gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import jadevec
from jadevec.cli import _commands, _message

from .conftest import command, environment
from .test_errors import GOOD, count, lines_file, one_line_error


@pytest.fixture
def docs(here):
    assert here("create", "--database", "docs", "--dimension", "4").returncode == 0
    return here


# ------------------------------------------------------------ info, query, export

def test_info_of_the_whole_store_counts_databases_and_vectors(docs, tmp_path):
    assert docs("create", "--database", "more", "--dimension", "2").returncode == 0
    source = lines_file(tmp_path / "rows.jsonl", GOOD, GOOD.replace('"a"', '"b"'))
    assert docs("insert", "--database", "docs", "--file", source).returncode == 0
    done = docs("info", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["databases"], info["vectors"], info["backend"]) == (2, 2, "hybrid")
    assert info["store_bytes_on_disk"] > 0


def test_query_reads_the_vector_from_a_npy_or_json_file(docs, tmp_path):
    source = lines_file(tmp_path / "rows.jsonl", GOOD,
                        '{"id": "far", "values": [-1, -2, -3, -4]}')
    assert docs("insert", "--database", "docs", "--file", source).returncode == 0
    np.save(tmp_path / "q.npy", np.array([1, 2, 3, 4], dtype=np.float32))
    (tmp_path / "q.json").write_text("[1, 2, 3, 4]")
    for query in (tmp_path / "q.npy", tmp_path / "q.json"):
        done = docs("query", "--database", "docs", "--vector-file", query, "-k", "1", "--json")
        assert done.returncode == 0, done.stderr
        hits = json.loads(done.stdout)
        assert [hit["id"] for hit in hits] == ["a"]


def test_a_bad_query_file_or_vector_is_a_user_error(docs, tmp_path):
    (tmp_path / "q.json").write_text("[1, 2,")
    one_line_error(docs("query", "--database", "docs", "--vector-file", tmp_path / "q.json"),
                   1, "q.json: not JSON", "a JSON list of numbers or a .npy vector")
    one_line_error(docs("query", "--database", "docs", "--vector", '[1, "2", 3, 4]'), 1,
                   "the query vector must be a list of numbers")
    one_line_error(docs("query", "--database", "docs", "--vector", "[1, true, 3, 4]"), 1,
                   "the query vector must be a list of numbers")


def test_export_refuses_ids_for_json_lines_and_line_breaks_in_npy_ids(docs, tmp_path):
    with jadevec.open(tmp_path / "store") as store:
        store.get_database("docs").store("two\nlines", [1, 2, 3, 4])
    one_line_error(docs("export", "--database", "docs", "--out", tmp_path / "o.jsonl",
                        "--ids", tmp_path / "o.ids"), 1, "--ids is only for a .npy export")
    one_line_error(docs("export", "--database", "docs", "--out", tmp_path / "o.npy"), 1,
                   "holds a line break", "--out FILE.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    done = docs("export", "--database", "docs", "--out", tmp_path / "o.jsonl")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "o.jsonl").read_text())["id"] == "two\nlines"


def test_an_export_that_cannot_be_put_in_place_leaves_no_partial_file(docs, tmp_path):
    assert docs("insert", "--database", "docs", "--file",
                lines_file(tmp_path / "rows.jsonl", GOOD)).returncode == 0
    out = tmp_path / "taken.jsonl"
    out.mkdir()
    (out / "keep").write_text("mine")
    done = docs("export", "--database", "docs", "--out", out)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "taken.jsonl.partial").exists()
    assert (out / "keep").read_text() == "mine"


# ------------------------------------------------------------ input files

def test_more_than_ten_skipped_rows_are_summed_up(docs, tmp_path):
    bad = [f'{{"id": "b{i}", "values": [1]}}' for i in range(13)]
    source = lines_file(tmp_path / "mixed.jsonl", GOOD, *bad)
    done = docs("insert", "--database", "docs", "--file", source, "--skip-invalid")
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if line.startswith("jadevec: skipped")]
    assert len(skipped) == 10
    assert "jadevec: ... and 3 more skipped rows" in done.stderr
    assert count(docs) == 1


def test_skip_invalid_in_a_json_array_keeps_the_good_rows_and_their_metadata(docs, tmp_path):
    rows = [{"id": "a", "values": [1, 2, 3, 4], "metadata": {"n": 1}},
            {"id": "b", "values": [1, 2]},
            {"id": "c", "values": [4, 3, 2, 1]},
            5]
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows))
    done = docs("insert", "--database", "docs", "--file", source, "--skip-invalid")
    assert done.returncode == 0, done.stderr
    assert "skipped 2 invalid rows" in done.stdout
    assert 'expected an object with "id" and "values", got int' in done.stderr
    assert count(docs) == 2
    with jadevec.open(tmp_path / "store", read_only=True) as store:
        db = store.get_database("docs")
        assert db.get_metadata("a") == {"n": 1} and db.get_metadata("c") is None


def test_a_batch_of_only_bad_rows_is_skipped_whole(docs, tmp_path):
    rows = [f'{{"id": "b{i}", "values": [1]}}' for i in range(3)] + [GOOD]
    source = lines_file(tmp_path / "rows.jsonl", *rows)
    done = docs("batch-insert", "--database", "docs", "--file", source, "--batch-size", "3",
                "--skip-invalid")
    assert done.returncode == 0, done.stderr
    assert "stored 1 row" in done.stdout and "skipped 3 invalid rows" in done.stdout
    assert count(docs) == 1


@pytest.mark.parametrize("content,fragment", [
    ('{"id": "a", "values": {"x": 1}}', '"values" must be a list of 4 numbers, got dict'),
    ("[1, 2]", 'item 1: expected an object with "id" and "values", got int'),
])
def test_rows_of_the_wrong_shape_are_named(docs, tmp_path, content, fragment):
    source = tmp_path / "rows.jsonl"
    source.write_text(content + "\n")
    one_line_error(docs("insert", "--database", "docs", "--file", source), 1, fragment)
    assert count(docs) == 0


def test_odd_npy_and_folder_inputs_are_named(docs, tmp_path):
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path), 1,
                   "is a folder; give a JSON, JSON lines or .npy file")
    np.save(tmp_path / "flat.npy", np.ones(4, dtype=np.float32))
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "flat.npy"), 1,
                   "a .npy file must hold a 2-D array of numbers")
    np.save(tmp_path / "text.npy", np.array([["a", "b", "c", "d"]]))
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "text.npy"), 1,
                   "a .npy file must hold a 2-D array of numbers")
    (tmp_path / "torn.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "torn.npy"), 1,
                   "not a readable .npy file")
    assert count(docs) == 0


def test_a_bad_id_in_an_ids_file_names_its_line(docs, tmp_path):
    np.save(tmp_path / "v.npy", np.ones((2, 4), dtype=np.float32))
    ids = lines_file(tmp_path / "ids.txt", "x", "y" * 2000)
    one_line_error(docs("insert", "--database", "docs", "--file", tmp_path / "v.npy",
                        "--ids", ids), 1, "line 2 of", "ids.txt")
    assert count(docs) == 0


# ------------------------------------------------------------ the store

def test_a_folder_that_is_no_store_of_any_backend_is_named(here, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a store")
    done = here("list", data_dir=folder)
    one_line_error(done, 1, "no hybrid store at", "catalog.sqlite3 is missing")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_damaged_catalog_exits_3_and_points_at_verify(docs, tmp_path):
    catalog = tmp_path / "store" / "catalog.sqlite3"
    catalog.write_bytes(b"this is not a catalog" * 100)
    one_line_error(docs("list"), 3, "the store's files are damaged", "jadevec verify")


def test_verify_reports_what_the_recovery_of_an_unclean_shutdown_did(jv, store_dir):
    assert jv("create", "--database", "docs", "--dimension", "4").returncode == 0
    subprocess.run([sys.executable, "-c",
                    "import os, sys, jadevec; s = jadevec.open(sys.argv[1]); "
                    "s.get_database('docs').store('a', [1, 2, 3, 4]); os._exit(0)",
                    str(store_dir)], check=True, env=environment(), timeout=120)
    done = jv("verify")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("recovered after an unclean shutdown: ")
    assert "the store was not closed cleanly" in lines[0]
    assert "database 'docs': replayed 1 writes" in lines[0]
    assert lines[1] == "ok: 1 database, 1 vector read back, every check passed"


# ------------------------------------------------------------ errors and signals

def test_error_classes_map_to_their_line_and_exit_status():
    text, code = _message(jadevec.StoreLockedError("the catalog is busy"))
    assert code == 1 and text.startswith("the catalog is busy; wait for the other writer")
    text, code = _message(jadevec.ReadOnlyError("opened with read_only=True"))
    assert (text, code) == ("opened with read_only=True", 1)
    text, code = _message(KeyError("surprise"))
    assert code == 1 and "internal error (KeyError" in text and "--debug" in text


def test_an_unexpected_exception_is_an_internal_error_line(here, monkeypatch):
    def broken(args):
        raise RuntimeError("a bug")
    monkeypatch.setitem(_commands.COMMANDS, "list", broken)
    one_line_error(here("list"), 1, "internal error (RuntimeError: a bug)", "--debug")


def test_ctrl_c_and_sigterm_in_a_command_end_it_with_130_and_143(here, monkeypatch):
    def ctrl_c(args):
        raise KeyboardInterrupt

    def terminated(args):
        os.kill(os.getpid(), signal.SIGTERM)  # handled before kill() returns
        raise AssertionError("SIGTERM did not stop the command")
    monkeypatch.setitem(_commands.COMMANDS, "list", ctrl_c)
    done = here("list")
    assert (done.returncode, done.stderr) == (130, "jadevec: interrupted\n")
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(_commands.COMMANDS, "list", terminated)
    done = here("list")
    assert (done.returncode, done.stderr) == (143, "jadevec: interrupted by SIGTERM\n")
    assert signal.getsignal(signal.SIGTERM) is previous


def test_an_ignored_sigterm_stays_ignored(here, monkeypatch):
    seen = []

    def look(args):
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0
    monkeypatch.setitem(_commands.COMMANDS, "list", look)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        assert here("list").returncode == 0
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIG_IGN]


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_closed_stdout_pipe_is_not_an_error(store_dir, unbuffered):
    # Unbuffered, print() itself meets the closed pipe inside the command;
    # buffered, the final flush does.
    env = environment()
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    reader, writer = os.pipe()
    os.close(reader)  # every write the command makes meets a closed pipe
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from jadevec.cli import entry_point; entry_point()",
             *command(store_dir, "create", "--database", "docs", "--dimension", "4")[3:]],
            stdout=writer, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")
    with jadevec.open(store_dir, read_only=True) as store:
        assert store.list_databases() == ["docs"]


def test_progress_without_a_terminal_size_still_draws(monkeypatch, capsys):
    from jadevec.cli import _progress

    def no_size(fd=None):
        raise OSError("not a terminal")
    monkeypatch.setattr(_progress.os, "get_terminal_size", no_size)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with _progress.progress(3, "testing", "rows", True) as bar:
        bar.update(3)
    assert "testing" in capsys.readouterr().err


def test_an_impatient_second_signal_stops_the_process_the_default_way(tmp_path):
    script = (
        "import os, signal, sys\n"
        "from jadevec.cli._signals import Interrupts\n"
        "with Interrupts():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    print('first signal noted', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    print('still running', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=environment(), timeout=120)
    assert done.stdout == "first signal noted\n"
    assert done.returncode == -signal.SIGINT


def test_interrupts_outside_the_main_thread_install_no_handler():
    import threading

    from jadevec.cli._signals import Interrupts
    seen = []

    def worker():
        with Interrupts() as interrupts:
            seen.append(signal.getsignal(signal.SIGINT))
            interrupts.check()
    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=60)
    assert seen == [before]


def test_importing_the_main_module_runs_nothing():
    import importlib

    import jadevec.cli
    main_module = importlib.import_module("jadevec.__main__")
    assert main_module.entry_point is jadevec.cli.entry_point


def test_ids_whose_hashes_collide_are_not_duplicates(docs, tmp_path, monkeypatch):
    from jadevec.cli import _input

    monkeypatch.setattr(_input, "hash", lambda value: 7, raising=False)  # every id collides
    rows = [GOOD.replace('"a"', f'"{name}"') for name in ("a", "b", "c")]
    done = docs("insert", "--database", "docs", "--file",
                lines_file(tmp_path / "rows.jsonl", *rows))
    assert done.returncode == 0, done.stderr
    assert count(docs) == 3
    rows.append(GOOD)  # and a real duplicate among the collisions is still found
    one_line_error(docs("insert", "--database", "docs", "--file",
                        lines_file(tmp_path / "again.jsonl", *rows)), 1,
                   "the id 'a' appears twice (line 1 and line 4)")


def test_ctrl_c_while_the_file_is_checked_stores_nothing(docs, tmp_path, monkeypatch):
    real_open = _commands.open_vector_file

    def open_then_ctrl_c(*args):
        source = real_open(*args)
        os.kill(os.getpid(), signal.SIGINT)  # noted by the command's handler, not raised
        return source

    monkeypatch.setattr(_commands, "open_vector_file", open_then_ctrl_c)
    done = docs("insert", "--database", "docs", "--file",
                lines_file(tmp_path / "rows.jsonl", GOOD))
    assert done.returncode == 130
    assert "interrupted by SIGINT while checking" in done.stderr
    assert "nothing was stored" in done.stderr
    monkeypatch.undo()
    assert count(docs) == 0
