"""Command-line entry points: a user's mistake is one clear line and exit status 2, never a traceback.

    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        return run_command(lambda: work(args))

``run_command`` calls the command and turns the package's own errors (``DataError`` for bad files,
``ValueError`` for bad parameters and configs, ``FileNotFoundError`` / ``FileExistsError`` /
``NotADirectoryError`` / ``IsADirectoryError`` for paths) into ``error: <message>`` on stderr and
``BAD_INPUT``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

BAD_INPUT = 2  # exit status for input the user can fix (argparse uses 2 for bad flags too)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def run_command(command: Callable[[], int | None]) -> int:
    """Run ``command``; its return value (None = 0) is the exit status, a user error gives BAD_INPUT."""
    try:
        status = command()
    except USER_ERRORS as err:  # DataError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    return 0 if status is None else int(status)
