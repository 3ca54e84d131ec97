"""The libstdc++ std::sort replay: a valid ordering on any input, and the exact order of
g++'s std::sort (ties, NaNs, the heapsort fallback) when g++ is installed."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from lassm.data.io import DataError
from lassm.data.stdsort import introsort_depth, std_argsort

F32 = np.float32
SIZES = (0, 1, 2, 5, 16, 17, 33, 100, 1000, 5000)


def random_keys(rng, n, dtype=F32, nan_fraction=0.0):
    """Few distinct values (many ties), optionally with NaNs."""
    keys = rng.integers(-3, 4, n).astype(dtype)
    if dtype != np.int64:
        keys /= 4
    if nan_fraction:
        keys[rng.random(n) < nan_fraction] = np.nan
    return keys


def patterned_keys(rng, n):
    """Inputs that send partitions down different paths: random, ties, presorted, reversed,
    organ pipe (from 1000 on it reaches the heapsort), and NaNs among ties or distinct values."""
    half = n // 2
    organ = np.concatenate([np.arange(half), np.arange(n - half)[::-1]])
    yield rng.random(n).astype(F32)
    yield random_keys(rng, n)
    yield np.sort(rng.random(n)).astype(F32)
    yield np.sort(rng.random(n))[::-1].astype(F32)
    yield organ.astype(F32)
    yield random_keys(rng, n, nan_fraction=0.1)
    yield np.where(rng.random(n) < 0.3, np.nan, rng.random(n)).astype(F32)


# ----------------------------------------------------------------------------- properties


def check_ordering(keys, order):
    """``order`` is a permutation that leaves no neighbour pair out of order, i.e. the runs
    between NaNs ascend (the module's NaN rule); without NaNs, the ascending sort."""
    assert order.dtype == np.int64 and order.shape == keys.shape
    assert np.array_equal(np.sort(order), np.arange(len(keys)))
    ordered = keys[order]
    assert not np.any(ordered[1:] < ordered[:-1])
    if not np.isnan(keys.astype(float)).any():
        assert np.array_equal(ordered, np.sort(keys))


@pytest.mark.parametrize("dtype", [F32, np.float64, np.int64])
def test_valid_ordering_with_ties_and_nans(dtype):
    rng = np.random.default_rng(0)
    for n in SIZES:
        for nan_fraction in ((0.0,) if dtype == np.int64 else (0.0, 0.05, 0.5)):
            keys = random_keys(rng, n, dtype, nan_fraction)
            original = keys.copy()
            order = std_argsort(keys)
            assert np.array_equal(keys, original, equal_nan=dtype != np.int64)  # not modified
            check_ordering(keys, order)
    check_ordering(np.full(40, np.nan, F32), std_argsort(np.full(40, np.nan, F32)))


def test_heapsort_fallback_is_valid():
    """Small depth limits hand ranges to the heapsort; the result is still an ordering."""
    rng = np.random.default_rng(1)
    for n in (17, 100, 1001):
        for depth in (0, 1, 3):
            for keys in patterned_keys(rng, n):
                check_ordering(keys, std_argsort(keys, depth))


def test_depth_limit():
    assert [introsort_depth(n) for n in (0, 1, 2, 3, 4, 17, 1024)] == [0, 0, 2, 2, 4, 8, 20]


def test_bad_arguments():
    with pytest.raises(DataError, match="keys"):
        std_argsort(np.zeros((3, 2)))
    with pytest.raises(DataError, match="keys"):
        std_argsort(np.array(["b", "a"]))
    with pytest.raises(DataError, match="depth_limit"):
        std_argsort(np.zeros(3), depth_limit=-1)


# ----------------------------------------------------------------------------- against g++

# Reads n, a depth limit (-1: plain std::sort) and n float32 keys from stdin (binary), sorts
# (key, index) pairs by key and writes the n int64 indices to stdout. With DEPTH it calls
# libstdc++'s internal introsort loop directly to pick the depth limit.
CPP_SORT = r"""
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>
struct Pair { float key; int64_t index; };
static bool less_key(const Pair& a, const Pair& b) { return a.key < b.key; }
int main() {
  int64_t n, depth;
  if (fread(&n, 8, 1, stdin) != 1 || fread(&depth, 8, 1, stdin) != 1) return 1;
  std::vector<float> keys(n);
  if (fread(keys.data(), 4, n, stdin) != (size_t)n) return 1;
  std::vector<Pair> pairs(n);
  for (int64_t i = 0; i < n; i++) pairs[i] = Pair{keys[i], i};
#ifdef DEPTH
  if (depth >= 0 && n > 1) {
    auto cmp = __gnu_cxx::__ops::__iter_comp_iter(less_key);
    std::__introsort_loop(pairs.begin(), pairs.end(), depth, cmp);
    std::__final_insertion_sort(pairs.begin(), pairs.end(), cmp);
  } else
#endif
  std::sort(pairs.begin(), pairs.end(), less_key);
  for (auto& p : pairs) fwrite(&p.index, 8, 1, stdout);
  return 0;
}
"""


def compile_sorter(tmp_path, *flags):
    source = tmp_path / "sort.cpp"
    source.write_text(CPP_SORT)
    binary = tmp_path / ("sort" + "".join(flags).replace("-", "_"))
    build = subprocess.run(["g++", "-O2", *flags, "-o", str(binary), str(source)],
                           capture_output=True, text=True)
    return binary, build


def cpp_order(binary, keys, depth=-1):
    header = np.array([len(keys), depth], np.int64).tobytes()
    out = subprocess.run([str(binary)], input=header + keys.astype(F32).tobytes(),
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int64)


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


@needs_gxx
def test_matches_libstdcxx_sort(tmp_path):
    """Ties and NaNs come out in std::sort's (unstable) order, which a stable sort misses."""
    binary, build = compile_sorter(tmp_path)
    assert build.returncode == 0, build.stderr
    rng = np.random.default_rng(2)
    unstable = False
    for n in SIZES:
        for keys in patterned_keys(rng, n):
            order = std_argsort(keys)
            assert np.array_equal(order, cpp_order(binary, keys))
            unstable |= not np.array_equal(order, np.argsort(keys, kind="stable"))
    assert unstable  # the inputs do exercise the tie order


@needs_gxx
def test_heapsort_fallback_matches_libstdcxx(tmp_path):
    """Depth limits below std::sort's own reach the heapsort, as badly split inputs do."""
    binary, build = compile_sorter(tmp_path, "-DDEPTH")
    if build.returncode != 0:  # the internals are not a stable interface
        pytest.skip(f"libstdc++ internals unavailable: {build.stderr[:200]}")
    rng = np.random.default_rng(3)
    for n in (17, 40, 1000):
        for depth in (0, 1, 2, 5):
            for keys in patterned_keys(rng, n):
                assert np.array_equal(std_argsort(keys, depth), cpp_order(binary, keys, depth))
