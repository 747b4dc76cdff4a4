"""The ``jadevec`` command line: a store folder worked on the way ``sqlite3`` works a file.

No server: each command is a process that opens the store, does one thing
and closes it. :func:`main` parses the arguments, runs the command and turns
every error into one line on stderr and an exit status:

====  =============================================================
0     success
1     a user error: bad input, a missing database or vector, a store
      locked by another writer, a file that cannot be read
2     usage: an unknown command or flag, a missing argument
3     integrity: ``verify`` (or any command) found damaged files
130   interrupted by Ctrl-C (SIGINT); 143 by SIGTERM
====  =============================================================

A traceback is printed only with ``--debug``. Docs: docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import traceback
from types import FrameType

import jadevec
from jadevec.cli._commands import COMMANDS
from jadevec.cli._signals import Interrupted

__all__ = ["main", "build_parser"]

_DEFAULT_DIR = "./jadevec-data"

_EXAMPLES = {
    "create": "jadevec create --database docs --dimension 384 --metric cosine",
    "list": "jadevec list --json",
    "info": "jadevec info --database docs",
    "drop": "jadevec drop --database docs",
    "insert": "jadevec insert --database docs --file rows.jsonl",
    "batch-insert": "jadevec batch-insert --database docs --file vectors.npy --ids ids.txt "
                    "--batch-size 10000",
    "get": "jadevec get --database docs --id doc-1 --json",
    "delete": "jadevec delete --database docs --id doc-1",
    "count": "jadevec count --database docs",
    "query": "jadevec query --database docs --vector \"[0.1, 0.2, 0.3]\" -k 5 --json",
    "verify": "jadevec verify",
    "compact": "jadevec compact --database docs",
    "export": "jadevec export --database docs --out docs.jsonl",
    "backup": "jadevec backup ./vectors-backup-2026-12-02",
}

_HELP = {
    "create": "create an empty database",
    "list": "list the databases, one name per line",
    "info": "show the store, or one database: dimension, metric, count, size, backend, SIMD",
    "drop": "delete a database and all its vectors",
    "insert": "store the rows of a JSON, JSON lines or .npy file (all or nothing)",
    "batch-insert": "like insert, in batches of --batch-size rows, with a progress bar",
    "get": "print one vector and its metadata",
    "delete": "delete one vector",
    "count": "print the number of vectors in a database",
    "query": "print the k nearest vectors to a query, best first",
    "verify": "check every file and read every vector back (exit 3 on damage)",
    "compact": "give the space of deleted vectors back",
    "export": "write a database to JSON lines, or to .npy plus an ids file",
    "backup": "copy the whole store to a new folder, each database at one commit",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jadevec`` (every command, with an example in its help)."""
    parser = argparse.ArgumentParser(
        prog="jadevec",
        description="Work on a jadevec store from the shell; each command is one process.",
        epilog="example: jadevec --data-dir ./vectors create --database docs --dimension 384\n"
               "exit status: 0 ok, 1 user error, 2 usage, 3 damaged store, "
               "130/143 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get("JADEVEC_DATA_DIR") or _DEFAULT_DIR,
        help="the store's folder (default: $JADEVEC_DATA_DIR, else ./jadevec-data)")
    parser.add_argument(
        "--backend", default="hybrid",
        help=f"the backend (default: hybrid); installed: "
             f"{', '.join(jadevec.available_backends())}")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error")
    parser.add_argument("--version", action="version", version=f"jadevec {jadevec.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=_HELP[name], description=_HELP[name],
                                  epilog=f"example:\n  {_EXAMPLES[name]}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        return sub

    def database(sub: argparse.ArgumentParser, required: bool = True) -> None:
        sub.add_argument("--database", "-d", required=required, metavar="NAME",
                         help="the database" + ("" if required else " (default: all)"))

    sub = command("create")
    database(sub)
    sub.add_argument("--dimension", type=int, required=True, metavar="N",
                     help="length of every vector, 1 to 65536")
    sub.add_argument("--metric", choices=("cosine", "dot", "l2"), default="cosine",
                     help="cosine (default) and dot rank higher first, l2 lower first")

    command("list")
    database(command("info"), required=False)
    database(command("drop"))

    for name in ("insert", "batch-insert"):
        sub = command(name)
        database(sub)
        sub.add_argument("--file", "-f", required=True, metavar="F",
                         help="JSON array or JSON lines of {\"id\", \"values\", \"metadata\"}, "
                              "or a .npy array of shape (rows, dimension)")
        if name == "batch-insert":
            sub.add_argument("--batch-size", type=int, required=True, metavar="N",
                             help="rows stored per batch")
        sub.add_argument("--ids", metavar="FILE",
                         help="for a .npy file: one id per line (default: the row numbers)")
        sub.add_argument("--skip-invalid", action="store_true",
                         help="store the valid rows and count the invalid ones instead of "
                              "storing nothing")

    for name in ("get", "delete"):
        sub = command(name)
        database(sub)
        sub.add_argument("--id", required=True, help="the vector's id")

    database(command("count"))

    sub = command("query")
    database(sub)
    given = sub.add_mutually_exclusive_group(required=True)
    given.add_argument("--vector", metavar="JSON", help="the query as a JSON list of numbers")
    given.add_argument("--vector-file", metavar="F",
                       help="a file holding the query: a JSON list or a .npy vector")
    sub.add_argument("-k", type=int, default=10, help="how many hits (default 10)")

    database(command("verify"), required=False)
    database(command("compact"), required=False)

    sub = command("export")
    database(sub)
    sub.add_argument("--out", "-o", required=True, metavar="F",
                     help="F.npy writes a float32 .npy and an ids file; any other name "
                          "writes JSON lines with metadata")
    sub.add_argument("--ids", metavar="FILE",
                     help="for a .npy export: where the ids go (default: F with suffix .ids)")

    sub = command("backup")
    sub.add_argument("dest", metavar="DEST",
                     help="a folder that does not exist yet; open the copy with "
                          "--data-dir DEST")
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _message(exc: BaseException) -> tuple[str, int]:
    """The line to print and the exit status for an error."""
    if isinstance(exc, jadevec.StoreLockedError):
        holder = re.search(r"by process (\d+)", str(exc))
        if holder:
            return (f"the store is open for writing by process {holder.group(1)}; wait for "
                    f"it to finish (or stop it) and run the command again"), 1
        return f"{exc}; wait for the other writer to finish and run the command again", 1
    if isinstance(exc, jadevec.CorruptionError):
        return (f"the store's files are damaged: {exc}; run 'jadevec verify' for a full "
                f"report"), 3
    if isinstance(exc, jadevec.ReadOnlyError | jadevec.StoreNotFoundError):
        return str(exc), 1
    if isinstance(exc, jadevec.JadevecError):
        return str(exc), 1
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", 1
    return (f"internal error ({type(exc).__name__}: {exc}); run again with --debug for the "
            f"traceback and report it"), 1


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _log_to_stderr(debug: bool) -> logging.Handler:
    """The library's log on stderr: errors only, everything with ``--debug``.

    Its warnings (a slow background checkpoint, recovery done on open) are for
    a program's log; the command reports what matters itself (``verify``
    lists recovery).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("jadevec: %(levelname)s: %(message)s"))
    handler.setLevel(logging.DEBUG if debug else logging.ERROR)
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run ``jadevec`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    logger = logging.getLogger("jadevec")
    handler = _log_to_stderr(args.debug)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    level = logger.level
    if args.debug:
        logger.setLevel(logging.DEBUG)
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_IGN:  # an ignored SIGTERM stays ignored
        signal.signal(signal.SIGTERM, _terminate)  # closes stores on the way out
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("jadevec: interrupted", file=sys.stderr)
        return 130
    except Interrupted as stop:
        print(f"jadevec: interrupted by {stop.name}", file=sys.stderr)
        return stop.exit_code
    except BrokenPipeError:
        raise  # the reader of stdout left: entry_point ends quietly, as for the final flush
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        text, code = _message(exc)
        print(f"jadevec: error: {_one_line(text)}", file=sys.stderr)
        return code
    finally:
        if previous is not signal.SIG_IGN:
            signal.signal(signal.SIGTERM, previous)
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


def entry_point() -> None:
    """The console script: ``sys.exit(main())``, quiet on a closed stdout pipe."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `jadevec export ... | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)
