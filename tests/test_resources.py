"""No leaked references and no per-call allocations: refcounts of every argument unchanged after many calls
(failing ones included) and after frozen and prepared functions go, no Python allocation per call, and the
process memory flat over a million calls.  (Threads: test_threads.py.)"""
import gc
import sys
import tracemalloc

import pytest
import tvm_ffi

import tvmfast

torch = pytest.importorskip("torch")


def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def test_refcounts_unchanged_after_many_calls_including_failures(add_mod):
    f = tvmfast.bind(add_mod)
    a, b, out = torch.randn(128), torch.randn(128), torch.empty(128)
    bad = torch.randn(64)
    obj = object()
    wrong = torch.randn(128).double()
    echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
    owned = tvmfast.bind(tvm_ffi.get_global_func("testing.schema_id_tensor"))
    owned(a)
    watched = [a, b, out, bad, obj, wrong, f, echo, owned]
    before = [sys.getrefcount(x) for x in watched]
    for _ in range(10_000):
        f(a, b, out)
        for args in [(a, b, bad), (a, obj, out), (a, b, wrong), (a, b)]:
            try:
                f(*args)
            except (TypeError, ValueError):
                pass
        echo(a)
        owned(a)
    del args
    gc.collect()
    after = [sys.getrefcount(x) for x in watched]
    assert after == before


def test_frozen_and_prepared_release_their_references(add_mod):
    f = tvmfast.bind(add_mod, num_args=3)
    a, b, out = torch.randn(128), torch.randn(128), torch.empty(128)
    before = [sys.getrefcount(x) for x in (a, b, out)]
    for _ in range(1000):
        g = f.freeze({0: a})
        g(b, out)
        p = f.prepare(a, b, out)
        p()
    del g, p
    gc.collect()
    assert [sys.getrefcount(x) for x in (a, b, out)] == before


def test_no_python_allocation_per_call(add_mod):
    f = tvmfast.bind(add_mod, num_args=3)
    a, b, out = torch.randn(128), torch.randn(128), torch.empty(128)
    p = f.prepare(a, b, out)
    g = f.freeze({0: a, 1: b})
    for _ in range(100):  # warm-up: type cache, lazy set-up
        f(a, b, out), g(out), p()
    tracemalloc.start()
    try:
        snap0 = tracemalloc.take_snapshot()
        for _ in range(20_000):
            f(a, b, out)
            g(out)
            p()
        snap1 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = [s for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0]
    grown = [s for s in grown if "tracemalloc" not in str(s.traceback)]
    assert sum(s.size_diff for s in grown) < 4096, grown[:5]


@pytest.mark.slow
def test_process_memory_flat_over_a_million_calls(add_mod):
    f = tvmfast.bind(add_mod)
    a, b, out = torch.randn(128), torch.randn(128), torch.empty(128)
    for _ in range(10_000):
        f(a, b, out)
    gc.collect()
    start = rss_bytes()
    for _ in range(1_000_000):
        f(a, b, out)
    gc.collect()
    grown = rss_bytes() - start
    assert grown < 1 << 20, f"RSS grew by {grown} bytes over 10^6 calls"
