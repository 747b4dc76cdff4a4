"""The command line's less travelled paths: each input form, each error class's
exit status, an interrupted or broken-pipe run, and the odd file a user gives."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import jadevec

from .conftest import command, environment


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
