"""``python -m lassm.bench {backbone,decoder,train,model,scaling} [options]``."""

from .cli import main

raise SystemExit(main())
