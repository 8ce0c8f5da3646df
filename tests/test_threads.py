"""Threads and the GIL.

tvmfast's own state (bound, frozen and prepared functions, the decision to pass owned
tensors, scalar templates) must be safe under concurrent calls: 8 threads calling one
function, with and without ``release_gil``, get exactly the serial results, also when they
make a fresh function's first calls together (each callee runs once per call) or their
first torch calls together (torch's set-up is never used half done).  A thread that
``resize_``s or ``set_``s tensors while others call is the user's data race (a wrong value
is allowed there, as for torch's own ops), but never a crash or a hang.  The GIL is released
around the call by default, as tvm_ffi does (``release_gil`` follows the function's own): a
callee that calls back into Python, or drops a tensor, on a worker thread cannot deadlock.

Cases that can crash or hang run in a child process (support.isolation.run_isolated).
"""
from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest
import tvm_ffi

import tvmfast
from support import isolation
from support.helpers import nan_like, raises_arg_error
from support.isolation import WORKER_CPP, N

torch = pytest.importorskip("torch")

worker_cpp = WORKER_CPP.function  # add_one (any address), call_on_worker, keep, drop_kept_on_worker


THREADS = 8
ITERS = 300


def child_main(names: list[str]) -> None:
    isolation.run_cases(sys.modules[__name__], names)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Children's environment: the test kernels and C++ functions (support.isolation)."""
    return isolation.child_env(tmp_path_factory)


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory):
    """Children's environment: support.isolation.WORKER_CPP's C++ functions."""
    return WORKER_CPP.env(tmp_path_factory)


def _run_threads(worker, n: int = THREADS, timeout: float = 240) -> list:
    """Run worker(k, barrier) in n threads started together; returns the errors they hit."""
    errors: list = []
    barrier = threading.Barrier(n)

    def body(k):
        try:
            worker(k, barrier)
        except BaseException as e:  # noqa: B036  (reported by the caller)
            errors.append((k, f"{type(e).__name__}: {e}"))

    threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish (deadlock?)"
    return errors


def _inputs(k: int, count: int, n: int = N):
    """Thread k's inputs: fresh random, the same for its serial and its threaded run."""
    g = torch.Generator().manual_seed(torch.initial_seed() + 7919 * k)
    return [(torch.randn(n, generator=g), torch.randn(n, generator=g)) for _ in range(count)]


def _compare_with_serial(make_call, expected, count: int = ITERS, lengths=None) -> None:
    """make_call(k) -> call(x, y, out); results of THREADS concurrent threads must equal
    the serial run's results and torch's (expected(x, y, k))."""
    lengths = lengths or [N] * THREADS
    inputs = [_inputs(k, count, lengths[k]) for k in range(THREADS)]
    calls = [make_call(k) for k in range(THREADS)]
    serial = []
    for k in range(THREADS):
        outs = []
        for x, y in inputs[k]:
            out = torch.full_like(x, float("nan"))
            calls[k](x, y, out)
            outs.append(out)
        serial.append(outs)
        for (x, y), out in zip(inputs[k], outs, strict=True):
            torch.testing.assert_close(out, expected(x, y, k), rtol=1e-6, atol=1e-6)
    threaded: list = [None] * THREADS

    def worker(k, barrier):
        outs = []
        barrier.wait()
        for x, y in inputs[k]:
            out = torch.full_like(x, float("nan"))
            calls[k](x, y, out)
            outs.append(out)
        threaded[k] = outs

    errors = _run_threads(worker)
    assert errors == [], errors[:3]
    for k in range(THREADS):
        for i, (a, b) in enumerate(zip(serial[k], threaded[k], strict=True)):
            assert torch.equal(a, b), f"thread {k} call {i}: threaded result differs from the serial one"


def _case_threads_match_serial(param: str):
    form, gil = param.split("/")
    release = gil == "nogil"
    add = isolation.kernel("add")
    if form == "dynamic":
        f = tvmfast.bind(add, release_gil=release)
        _compare_with_serial(lambda k: f, lambda x, y, k: x + y)
    elif form == "frozen":
        # one frozen function shared by all threads, each with its own dynamic arguments
        f = tvmfast.bind(add, num_args=3, release_gil=release)
        w = torch.randn(N)
        g = f.freeze({1: w})
        _compare_with_serial(lambda k: lambda x, y, out: g(x, out), lambda x, y, k: x + w)
    elif form == "frozen_output":
        f = tvmfast.bind(add, num_args=3, release_gil=release)
        w = torch.randn(N)
        g = f.freeze({0: w})
        _compare_with_serial(lambda k: lambda x, y, out: g(y, out), lambda x, y, k: w + y)
    elif form == "frozen_scalars":
        # scale: B = A * alpha + shift, alpha frozen, shift differs per thread
        f = tvmfast.bind(isolation.kernel("scale"), num_args=4, release_gil=release)
        g = f.freeze({2: 1.5})
        _compare_with_serial(lambda k: lambda x, y, out: g(x, out, k - 3),
                             lambda x, y, k: x * 1.5 + (k - 3), lengths=[64] * THREADS)
    elif form == "prepare_each_call":
        f = tvmfast.bind(add, num_args=3, release_gil=release)
        _compare_with_serial(lambda k: lambda x, y, out: f.prepare(x, y, out)(), lambda x, y, k: x + y)
    elif form == "freeze_each_call":
        f = tvmfast.bind(add, num_args=3, release_gil=release)
        _compare_with_serial(lambda k: lambda x, y, out: f.freeze({0: x, 2: out})(y), lambda x, y, k: x + y)
    elif form == "dynamic_lengths":
        f = tvmfast.bind(isolation.kernel("add_dyn"), release_gil=release)
        _compare_with_serial(lambda k: f, lambda x, y, k: x + y, count=150,
                             lengths=[1 + 37 * k for k in range(THREADS)])
    elif form == "prepared_shared":
        # one prepared function called by all threads (all write the same sum)
        f = tvmfast.bind(add, release_gil=release)
        a, b, out = torch.randn(N), torch.randn(N), torch.full((N,), float("nan"))
        p = f.prepare(a, b, out)
        expected = a + b

        def worker(k, barrier):
            barrier.wait()
            for _ in range(ITERS * 3):
                p()
            assert torch.equal(out, expected)

        errors = _run_threads(worker)
        assert errors == [], errors[:3]
        assert torch.equal(out, expected)
    elif form == "owned_cpp":
        f = tvmfast.bind(isolation.cpp("add_one_owned"), release_gil=release)
        _compare_with_serial(lambda k: lambda x, y, out: f(x, out), lambda x, y, k: x + 1)
    elif form == "owned_callback":
        cb = tvm_ffi.convert(lambda x, out: np.copyto(np.from_dlpack(out), np.from_dlpack(x) * np.float32(2)))
        f = tvmfast.bind(cb, release_gil=release)
        _compare_with_serial(lambda k: lambda x, y, out: f(x, out), lambda x, y, k: x * 2, count=60)
    else:
        raise AssertionError(form)


def _first_call_form(form, f, xs, outs, shared_x, shared_out):
    """call(k) for thread k: f itself, one prepared or one frozen function of f."""
    if form == "dynamic":
        return lambda k: f(xs[k], outs[k])
    if form == "prepared":
        p = f.prepare(shared_x, shared_out)
        return lambda k: p()
    if form == "frozen":
        g = f.freeze({0: shared_x})
        return lambda k: g(outs[k])
    raise AssertionError(form)


def _case_first_calls_race(param: str):
    """8 threads make the first calls of fresh functions at once (where tvmfast may find out
    what the callee needs): each callee runs exactly once per call and every result is right."""
    form, gil = param.split("/")
    release = gil == "nogil"
    bump, count = isolation.cpp("bump_then_add_one"), isolation.cpp("get_count")
    for _ in range(20):
        f = tvmfast.bind(bump, num_args=2, release_gil=release)
        xs = [torch.randn(24) for _ in range(THREADS)]
        outs = [torch.full((24,), float("nan")) for _ in range(THREADS)]
        shared_x, shared_out = torch.randn(24), torch.full((24,), float("nan"))
        call = _first_call_form(form, f, xs, outs, shared_x, shared_out)
        before = count()

        def worker(k, barrier, call=call):
            barrier.wait()
            for _ in range(5):
                call(k)

        errors = _run_threads(worker)
        assert errors == [], errors[:3]
        ran = count() - before
        assert ran == 5 * THREADS, f"{5 * THREADS} calls ran the callee {ran} times"
        if form == "dynamic":
            for x, out in zip(xs, outs, strict=True):
                assert torch.equal(out, x + 1)
        elif form == "prepared":
            assert torch.equal(shared_out, shared_x + 1)
        else:
            for out in outs:
                assert torch.equal(out, shared_x + 1)


SERIAL_FORMS = ["dynamic", "frozen", "frozen_output", "frozen_scalars", "prepare_each_call", "freeze_each_call",
                "dynamic_lengths", "prepared_shared", "owned_cpp", "owned_callback"]


def test_eight_threads_match_serial_results(env):
    cases = [f"_case_threads_match_serial:{form}/{gil}" for form in SERIAL_FORMS for gil in ("gil", "nogil")]
    isolation.assert_all_ok(isolation.run_isolated("test_threads", cases, env=env, timeout=480))


def test_first_calls_from_eight_threads(env):
    cases = [f"_case_first_calls_race:{form}/{gil}" for form in ("dynamic", "prepared", "frozen")
             for gil in ("gil", "nogil")]
    isolation.assert_all_ok(isolation.run_isolated("test_threads", cases, env=env, timeout=300))


# ---------------------------------------------------------------------------
# Another thread changing the tensors' shapes and storages during the calls
# ---------------------------------------------------------------------------

# Every storage the tensors ever use is kept alive by the test and large enough for every
# shape they take: no memory is freed or reallocated while calls run, so nothing but
# tvmfast itself could make a call touch freed memory.  Values may be wrong (the user's race).
POOL_ELEMS = 1 << 16


def _case_concurrent_resize(gil: str):
    release = gil == "nogil"
    pool = [torch.randn(POOL_ELEMS) for _ in range(6)]
    shapes = [(N,), (N // 2,), (2 * N,), (8, 16), (N,), (N,), (0,)]
    offsets = [0, 64, 3, 0, 128]

    def fresh(k):
        return torch.empty(0).set_(pool[k].untyped_storage(), 0, (N,))

    a, b, out = fresh(0), fresh(1), fresh(2)
    f = tvmfast.bind(isolation.kernel("add"), num_args=3, release_gil=release)
    f_dyn = tvmfast.bind(isolation.kernel("add_dyn"), num_args=3, release_gil=release)
    p = f.prepare(a, b, out)
    p_dyn = f_dyn.prepare(a, b, out)
    g = f.freeze({0: a, 1: b})
    g_dyn = f_dyn.freeze({1: b})
    own_out = [torch.full((N,), float("nan")) for _ in range(THREADS)]
    stop = threading.Event()
    counts = {"ok": 0, "error": 0}
    lock = threading.Lock()

    def mutator():
        i = 0
        while not stop.is_set():
            t = (a, b, out)[i % 3]
            k = i % 7
            if k < 5:
                t.set_(pool[(i // 3) % len(pool)].untyped_storage(), offsets[i % len(offsets)], shapes[i % len(shapes)])
            else:
                t.resize_(shapes[(i // 7) % len(shapes)])
            i += 1

    def worker(k, barrier):
        calls = [p, p_dyn, lambda: f(a, b, out), lambda: f_dyn(a, b, out), lambda: g(out),
                 lambda: g(own_out[k]), lambda: g_dyn(a, own_out[k])]
        barrier.wait()
        ok = err = 0
        for i in range(ITERS * 4):
            try:
                calls[(i + k) % len(calls)]()
                ok += 1
            except Exception:  # noqa: BLE001  (refusing a tensor that changed under it is fine)
                err += 1
        with lock:
            counts["ok"] += ok
            counts["error"] += err

    m = threading.Thread(target=mutator, daemon=True)
    m.start()
    try:
        errors = _run_threads(worker)
    finally:
        stop.set()
        m.join(60)
    assert not m.is_alive()
    assert errors == [], errors[:3]
    print(f"concurrent resize ({gil}): {counts}", flush=True)
    # afterwards, with the tensors left alone, everything works again
    for t, k in ((a, 3), (b, 4), (out, 5)):
        t.set_(pool[k].untyped_storage(), 0, (N,))
    a.normal_()
    b.normal_()
    for call in (lambda: f(a, b, out), lambda: f.prepare(a, b, out)()):
        out.fill_(float("nan"))
        call()
        assert torch.equal(out, a + b)


def test_concurrent_resize_does_not_crash_or_hang(env):
    results = isolation.run_isolated("test_threads", ["_case_concurrent_resize:gil", "_case_concurrent_resize:nogil"],
                                  env=env, timeout=240)
    isolation.assert_all_ok(results)


# ---------------------------------------------------------------------------
# The GIL: released around the call by default, as tvm_ffi does
# ---------------------------------------------------------------------------


def _case_callback_on_worker_thread():
    calls = []
    cb = tvm_ffi.convert(lambda: calls.append(threading.get_ident()))
    f = tvmfast.bind(worker_cpp("call_on_worker"))
    assert f.release_gil is True
    f(cb)
    tvmfast.bind(worker_cpp("call_on_worker")).prepare(cb)()
    assert len(calls) == 2 and threading.get_ident() not in calls


def _case_kept_tensor_released_on_worker_thread():
    x = torch.randn(8)
    tvmfast.bind(worker_cpp("keep"))(x)
    del x
    gc.collect()
    tvmfast.bind(worker_cpp("drop_kept_on_worker"))()  # the deleter takes the GIL on the worker


def test_no_deadlock_where_tvm_ffi_returns(worker_env):
    cases = ["_case_callback_on_worker_thread", "_case_kept_tensor_released_on_worker_thread"]
    isolation.assert_all_ok(isolation.run_isolated("test_threads", cases, env=worker_env, timeout=120))


def test_release_gil_default_follows_the_function():
    fn = worker_cpp("add_one")
    assert tvmfast.bind(fn).release_gil == fn.release_gil
    assert tvmfast.bind(fn, release_gil=False).release_gil is False
    other = tvm_ffi.get_global_func("testing.echo")
    other.release_gil = False
    assert tvmfast.bind(other).release_gil is False


def test_release_gil_option(add_mod, gen):
    f = tvmfast.bind(add_mod, release_gil=True)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    f(a, b, out)
    assert torch.equal(out, a + b)
    assert f.release_gil is True
    f.release_gil = False
    assert f.release_gil is False
    out2 = nan_like(a)
    f(a, b, out2)
    assert torch.equal(out2, a + b)


# ---------------------------------------------------------------------------
# First torch use from several threads at once
# ---------------------------------------------------------------------------


def _case_first_use_race():
    """Several threads make their first torch call together while the set-up is slow; none
    may classify torch tensors on half-set state (which skipped the lazy-view refusal)."""
    from tvmfast import _torch  # noqa: PLC0415

    original = _torch.find_to_dlpack_nonowning

    def slow(*args):
        import time  # noqa: PLC0415

        time.sleep(0.3)  # the set-up runs Python code: other threads get the GIL meanwhile
        return original(*args)

    _torch.find_to_dlpack_nonowning = slow
    f = tvmfast.bind(worker_cpp("add_one"))
    barrier = threading.Barrier(4)
    errors = []

    def first_call():
        try:
            x = torch.randn(32)
            y = torch.full((32,), float("nan"))
            barrier.wait()
            f(x, y)
            assert torch.equal(y, x + 1)
        except BaseException as e:  # noqa: B036  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=first_call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    x = torch.randn(32)
    raises_arg_error(lambda: f(torch._neg_view(x), torch.empty(32)), 0, "negative bit")


def test_first_torch_use_from_threads(worker_env):
    for direct in ("1", "0"):
        e = dict(worker_env, TVMFAST_TORCH_DIRECT=direct)
        isolation.assert_all_ok(isolation.run_isolated("test_threads", ["_case_first_use_race"], env=e, timeout=120))


# ---------------------------------------------------------------------------
# One bound function shared by threads, in this process
# ---------------------------------------------------------------------------


def test_threads_share_one_bound_function(add_mod):
    f = tvmfast.bind(add_mod)
    f_gil = tvmfast.bind(add_mod, release_gil=True)
    errors = []

    def worker(seed, fn):
        g = torch.Generator().manual_seed(seed)
        try:
            for i in range(2000):
                a = torch.randn(128, generator=g)
                b = torch.randn(128, generator=g)
                out = torch.full((128,), float("nan"))
                fn(a, b, out)
                if not torch.equal(out, a + b):
                    errors.append((seed, i))
                    return
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s, f if s % 2 else f_gil)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
