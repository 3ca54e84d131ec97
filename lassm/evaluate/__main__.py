"""`python -m lassm.evaluate [--semantic] --pred PRED_DIR --gt GT_DIR [--classes C] [--json OUT]`
(`formats.main`)."""

from .formats import main

if __name__ == "__main__":
    raise SystemExit(main())
