"""Process pools of the data commands, and how many threads a data function may use.

A data function on its own (a notebook, ``predict``) may use every core: the kNN queries and the batches
of ``eigh`` of :mod:`lassm.data.normals` run on several threads, and so do numpy's BLAS and torch. Inside
a pool of ``--workers`` processes each worker gets one thread of each (threadpoolctl for the BLAS):
fifteen workers each with OpenBLAS threads for all 16 cores of a GPU machine prepared 400 tabletop
frames in 106-120 s at a load average of 71 (README, "Real single-view scans").
Every process pool of :mod:`lassm.data` comes from :func:`process_pool`.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor

_THREADS = 0  # 0: this process is no pool worker (every core); set to 1 in each worker


def threads() -> int:
    """Threads a data function may use in this process: the cores it may run on, 1 in a pool worker."""
    if _THREADS:
        return _THREADS
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_thread() -> None:
    global _THREADS
    _THREADS = 1
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # libraries loaded later
        os.environ[name] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # OpenBLAS / MKL / OpenMP already loaded (a forked worker inherits the parent's)
    if "torch" in sys.modules:  # torch's own pool; importing it here would cost each worker a second
        sys.modules["torch"].set_num_threads(1)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, each of them running data functions on one thread."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_one_thread)
