"""Data process pools give each worker one thread; a lone process keeps every core."""

import os

import numpy as np
import torch
from threadpoolctl import threadpool_info

from lassm.data import workers
from lassm.data.normals import knn_neighbours


def _inside_worker(coord):
    blas = [pool["num_threads"] for pool in threadpool_info()]
    return workers.threads(), torch.get_num_threads(), blas, knn_neighbours(coord, 8)


def test_a_lone_process_may_use_its_cores():
    assert workers.threads() == len(os.sched_getaffinity(0))


def test_pool_workers_run_on_one_thread_and_compute_the_same_neighbours():
    coord = np.random.default_rng(0).normal(size=(3000, 3))
    with workers.process_pool(2) as pool:
        results = list(pool.map(_inside_worker, [coord, coord]))
    expected = knn_neighbours(coord, 8)  # this process: every core
    for n_threads, torch_threads, blas, found in results:
        assert n_threads == 1 and torch_threads == 1 and blas and set(blas) == {1}
        np.testing.assert_array_equal(found, expected)
