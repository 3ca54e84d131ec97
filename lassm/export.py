"""`python -m lassm.export CHECKPOINT --split val --out DIR`: kept for the documented command.

The code is :mod:`lassm.evaluate.export` (``python -m lassm.evaluate.export`` is the same command).
"""

from .evaluate.export import main

if __name__ == "__main__":
    raise SystemExit(main())
