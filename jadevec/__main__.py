"""``python -m jadevec``: the same as the ``jadevec`` command."""

from jadevec.cli import entry_point

if __name__ == "__main__":
    entry_point()
