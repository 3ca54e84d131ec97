"""Command-line entry points: a user's mistake is one clear line and exit status 2, never a traceback.

    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        return run_command(lambda: work(args))

``run_command`` calls the command and turns the package's own errors (``DataError`` for bad files,
``ValueError`` for bad parameters and configs, ``FileNotFoundError`` / ``FileExistsError`` /
``NotADirectoryError`` / ``IsADirectoryError`` for paths) into ``error: <message>`` on stderr and
``BAD_INPUT``; anything else is a bug and keeps its traceback. ``check_output_file`` and
``check_output_dir`` let a command refuse an output path it cannot write before it does the work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

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


def dash_values(argv: list[str] | None, flags: tuple[str, ...] = ("--variant",)) -> list[str]:
    """The command line with ``FLAG VALUE`` joined into ``FLAG=VALUE`` for a value that starts with a dash:
    argparse takes ``-3`` for a value (a negative number) but ``-3-sc`` for another option, so that
    ``--variant -3-sc`` would fail with "expected one argument"."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = []
    while args:
        arg = args.pop(0)
        if arg in flags and args and args[0].startswith("-") and len(args[0]) > 1 and args[0][1] != "-":
            arg = f"{arg}={args.pop(0)}"
        out.append(arg)
    return out


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """Fail before the work, not after it, when ``path`` cannot become a file: it is a folder, a part of it
    is a file, or the first of its folders that exists is not writable (missing ones are created later)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag}: {path} is a folder; expected a file name, "
                                f"e.g. {path / 'results.json'}")
    _check_writable_folder(path.parent, path, flag)


def check_output_dir(path: str | os.PathLike, flag: str) -> None:
    """Like :func:`check_output_file` for a folder the command will create or fill."""
    path = Path(path)
    _check_writable_folder(path, path, flag)


def _check_writable_folder(folder: Path, target: Path, flag: str) -> None:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{flag}: cannot write {target}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: cannot write {target}: no write permission in {folder}")


def add_split_arguments(parser) -> None:
    """``--split-radius``, ``--split-mode``, ``--split-convex`` and ``--split-colour``: single-view
    post-processing over the checkpoint's setting (:func:`lassm.inference.override_split`), for
    ``predict`` and ``export``."""
    parser.add_argument("--split-radius", type=float, default=None, metavar="METRES",
                        help="single-view scans: cut masks along gaps wider than this between objects "
                             "(0 = off; default: the checkpoint's setting, 0.015 for the tabletop preset)")
    parser.add_argument("--split-mode", default="partition", choices=("cut", "partition"),
                        help="with --split-radius: cut each mask, or take the clusters as objects unless "
                             "the model divides one")
    parser.add_argument("--split-convex", type=float, default=None, metavar="DEGREES",
                        help="partition: divide the clusters along concave creases first, joints within "
                             "DEGREES smooth (0 = off; default: the checkpoint's setting, 45 for the "
                             "tabletop preset)")
    parser.add_argument("--split-colour", type=float, default=None, metavar="DISTANCE",
                        help="with --split-convex: a smooth concave joint also needs its superpoints' mean "
                             "colours within DISTANCE (RGB 0-1) to hold (0 = off; default: the "
                             "checkpoint's setting)")
