"""``python -m lassm.bench {backbone,decoder,train,model,scaling,ddp} [options]``."""

from .cli import main

raise SystemExit(main())
