"""Reliability round 2: ways in which ``bind(f)(*args)`` differed from ``f(*args)``, corrupted
memory or hung.  One regression test per case; the cases that crashed or hung run in child
processes with a timeout (``test_safety.run_isolated``).

Misaligned CPU data follows the rule in ``tvmfast/tvmfast_helpers.h`` ("Misaligned CPU
data"): an aligned copy with the tensor's own layout where that copy is indistinguishable
from the caller's memory, a ValueError naming the argument where it would not be.  rt_mod
itself crashes on misaligned data with kernels that assume alignment, so those cases are
compared with the function called on aligned data, or with a function that takes any
address called directly.
"""
from __future__ import annotations

import gc
import json
import os
import sys
import threading

import numpy as np
import pytest
import tvm_ffi

import tvmfast

torch = pytest.importorskip("torch")

from cpp_sources import ADD_ONE  # noqa: E402
from test_safety import assert_all_ok, run_cases, run_isolated  # noqa: E402

LIBS_ENV = "TVMFAST_RELIABILITY_LIBS"

CPP_NAME = "tvmfast_reliability"
CPP_FUNCTIONS = ["add_one", "size0", "call_on_worker", "keep", "drop_kept_on_worker"]
CPP_SOURCE = r"""
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <thread>

namespace ffi = tvm::ffi;

""" + ADD_ONE + r"""
// Reads only the shape.
int64_t size0(ffi::TensorView x) { return x.size(0); }

// Runs cb on a worker thread and waits for it (a Python callback there needs the GIL).
void call_on_worker(ffi::Function cb) {
  std::thread worker([&] { cb(); });
  worker.join();
}

// Keeps a tensor until drop_kept_on_worker.
static ffi::Optional<ffi::Tensor> kept;
void keep(ffi::Tensor t) { kept = t; }

// Drops the kept tensor's last reference on a worker thread (its deleter needs the GIL)
// and waits for it.
void drop_kept_on_worker() {
  std::thread worker([] { kept = ffi::Optional<ffi::Tensor>(); });
  worker.join();
}
"""


def _build_cpp(directory: str) -> str:
    from tvm_ffi import cpp as ffi_cpp  # noqa: PLC0415

    return ffi_cpp.build_inline(CPP_NAME, cpp_sources=CPP_SOURCE, functions=CPP_FUNCTIONS,
                                build_directory=directory)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment for child processes: the C++ test functions built once."""
    d = tmp_path_factory.mktemp("reliability_libs")
    e = dict(os.environ)
    e[LIBS_ENV] = json.dumps({"cpp": _build_cpp(str(d / "cpp"))})
    return e


_LOADED: dict = {}


def cpp(fn: str):
    """A C++ test function (built by the fixture, or here when run in-process)."""
    if "cpp" not in _LOADED:
        libs = json.loads(os.environ.get(LIBS_ENV) or "{}")
        if "cpp" in libs:
            _LOADED["cpp"] = tvm_ffi.load_module(libs["cpp"])
        else:
            from tvm_ffi import cpp as ffi_cpp  # noqa: PLC0415

            _LOADED["cpp"] = ffi_cpp.load_inline(CPP_NAME, cpp_sources=CPP_SOURCE, functions=CPP_FUNCTIONS)
    return _LOADED["cpp"].get_function(fn)


def child_main(names: list[str]) -> None:
    run_cases(sys.modules[__name__], names)


def misaligned_torch(n: int, offset: int = 3, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(buffer, view): a fresh random 1-D view of n elements starting `offset` elements into
    a 64-byte aligned torch buffer, so its data is not 64-byte aligned."""
    buf = torch.randn(n + offset + 16).to(dtype)
    view = buf[offset:offset + n]
    assert view.data_ptr() % 64 != 0
    return buf, view


def misaligned_numpy(n: int, offset: int = 3) -> tuple[np.ndarray, np.ndarray]:
    raw = np.random.default_rng().standard_normal(n + offset + 32).astype(np.float32)
    start = ((-raw.ctypes.data) % 64) // 4 + offset  # offset elements past a 64-byte boundary
    view = raw[start:start + n]
    assert view.ctypes.data % 64 != 0
    return raw, view


def add_one_at_64():
    """A function that takes any address, bound as if it assumed 64-byte alignment: every
    misaligned CPU tensor takes the aligned-copy path, and the function called directly
    is the reference."""
    return tvmfast.bind(cpp("add_one"), alignment=64)


def raises_arg_error(call, pos: int, *words: str) -> str:
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"tvmfast: argument #{pos}: "), msg
    for word in words:
        assert word in msg, msg
    return msg


# ---------------------------------------------------------------------------
# 1. The same misaligned tensor twice: one copy, as one memory for rt_mod.
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def increment_both():
    pytest.importorskip("tvm", reason="apache-tvm builds the test kernel")
    from bench import kernels  # noqa: PLC0415

    # A[i] += 1; B[i] += 1, without tir.noalias: called as k(x, x), x gains 2.
    return kernels._build('''
@T.prim_func
def main(a: T.handle, b: T.handle):
    T.func_attr({"global_symbol": "main"})
    A = T.match_buffer(a, (64,), "float32")
    B = T.match_buffer(b, (64,), "float32")
    for i in range(64):
        A[i] = A[i] + T.float32(1)
    for i in range(64):
        B[i] = B[i] + T.float32(1)
''', "llvm")


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_same_misaligned_tensor_twice_in_place(increment_both, kind):
    f = tvmfast.bind(increment_both)
    assert f.alignment == 64
    _, x = misaligned_torch(64) if kind == "torch" else misaligned_numpy(64)
    values = x.numpy() if kind == "torch" else x
    expect = values.copy()
    aligned = torch.tensor(expect)  # rt_mod on aligned memory: the reference
    increment_both(aligned, aligned)
    f(x, x)
    np.testing.assert_array_equal(values, aligned.numpy())
    np.testing.assert_array_equal(values, (expect + 1) + 1)


def test_same_elements_as_input_and_output():
    f = add_one_at_64()
    _, x = misaligned_torch(100)
    expect = x + 1
    f(x, x)
    assert torch.equal(x, expect)


# ---------------------------------------------------------------------------
# 2. Negative strides: the copy covers the elements below the data pointer.
# ---------------------------------------------------------------------------
def _case_negative_strides_numpy():
    f = add_one_at_64()
    raw, a = misaligned_numpy(200)
    rev = a[::-1]
    assert rev.ctypes.data % 64 != 0
    out, ref = np.full(200, np.nan, np.float32), np.full(200, np.nan, np.float32)
    before = raw.copy()
    f(rev, out)
    cpp("add_one")(rev, ref)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(raw, before)
    # As an output: written through the reversed view, nothing else touched.
    raw2, b = misaligned_numpy(200)
    raw3 = raw2.copy()
    src = np.random.default_rng().standard_normal(200).astype(np.float32)
    f(src, b[::-1])
    start = b.ctypes.data - raw2.ctypes.data
    view3 = raw3[start // 4:start // 4 + 200]
    cpp("add_one")(src, view3[::-1])
    np.testing.assert_array_equal(raw2, raw3)


def _case_negative_strides_tvm_kernel_error_first():
    """A compact-buffer TVM kernel refuses a reversed view with its own stride error, as
    rt_mod does (TVM's checks run before any data is read, on the copy)."""
    from bench import kernels  # noqa: PLC0415

    rt_mod = kernels.build_add(128)
    f = tvmfast.bind(rt_mod)
    _, a = misaligned_numpy(128)
    b, c = np.zeros(128, np.float32), np.zeros(128, np.float32)
    with pytest.raises(ValueError) as theirs:
        rt_mod(a[::-1], b, c)
    with pytest.raises(ValueError) as ours:
        f(a[::-1], b, c)
    assert str(ours.value) == str(theirs.value)


# ---------------------------------------------------------------------------
# 3. Gaps: only the elements are copied and written back.
# ---------------------------------------------------------------------------
def test_interleaved_columns_only_elements_written():
    """Input column 0, output column 1 of one misaligned (n, 2) buffer: the output lives in
    the input's gaps; writing back the input's span would revert it."""
    f = add_one_at_64()
    buf = torch.randn(2 * 300 + 3)
    m = buf[3:603].view(300, 2)
    ref = m.clone()
    f(m[:, 0], m[:, 1])
    cpp("add_one")(ref[:, 0], ref[:, 1])
    assert torch.equal(m, ref)
    assert torch.equal(m[:, 1], m[:, 0] + 1)


def test_aligned_output_inside_misaligned_input_span_is_refused():
    f = add_one_at_64()
    buf = torch.randn(160)  # 64-byte aligned: buf[16] is aligned, buf[1] is not
    before = buf.clone()
    raises_arg_error(lambda: f(buf[1:65], buf[16:80]), 0, "shares memory with argument #1")
    raises_arg_error(lambda: f(buf[16:80], buf[1:65]), 1, "shares memory with argument #0")
    assert torch.equal(buf, before)


def test_far_apart_elements_are_refused_not_copied():
    """A misaligned column of a wide matrix: a copy with its layout would span the whole
    matrix; refused, naming the argument."""
    f = add_one_at_64()
    m = torch.randn(500, 600)
    col = m[:, 1]
    assert col.data_ptr() % 64 != 0
    out = torch.zeros(500)
    raises_arg_error(lambda: f(col, out), 0, "far apart", "contiguous()")
    f(col.contiguous(), out)  # the fix the message gives
    assert torch.equal(out, col + 1)


def _case_misaligned_empty_storage():
    """A misaligned tensor whose storage was resized to 0: refused (nothing to copy) by a
    function that assumes alignment, passed as is by one that does not."""
    _, x = misaligned_torch(16)
    x.untyped_storage().resize_(0)
    assert tvmfast.bind(cpp("size0"), alignment=1)(x) == cpp("size0")(x) == 16
    raises_arg_error(lambda: tvmfast.bind(cpp("size0"), alignment=64)(x), 0, "storage does not hold")


# ---------------------------------------------------------------------------
# 4-6. Callbacks: concurrent updates kept; a kept copy or view refused.
# ---------------------------------------------------------------------------
def test_caller_side_update_during_the_call_is_kept():
    _, x = misaligned_torch(16)
    x_ref = x.clone()

    def make(target):
        def callback(t):
            target[0] = 99.0  # the caller's side, during the call
            view = torch.from_dlpack(t)  # the callee writes element 5 and lets go
            view[5] = 7.0
            del view
        return tvm_ffi.convert(callback)

    tvmfast.bind(make(x), alignment=64)(x)
    make(x_ref)(x_ref)
    assert torch.equal(x, x_ref)
    assert x[0] == 99.0 and x[5] == 7.0


def test_callee_that_keeps_a_copy_and_fails_raises_clearly():
    _, x = misaligned_torch(16)
    saved = []

    def callback(t):
        saved.append(t)
        raise RuntimeError("callee failed")

    f = tvmfast.bind(tvm_ffi.convert(callback), alignment=64)
    msg = raises_arg_error(lambda: f(x), 0, "kept")
    assert "alias" in msg
    try:
        f(x)
    except ValueError as e:
        assert "callee failed" in str(e.__cause__)
    # What the callee kept stays valid memory (owned by the tensor object it holds).
    assert torch.from_dlpack(saved[0]).shape == (16,)
    saved.clear()
    gc.collect()


def test_view_made_by_a_callback_is_refused_writes_reach_caller():
    _, x = misaligned_torch(16)
    expect = x.clone()
    expect[2] = 5.0
    views = []

    def callback(t):
        view = torch.from_dlpack(t)
        view[2] = 5.0
        views.append(view)

    f = tvmfast.bind(tvm_ffi.convert(callback), alignment=64)
    raises_arg_error(lambda: f(x), 0, "kept")
    assert torch.equal(x, expect)  # the write made during the call was written back
    views.clear()


def test_misaligned_copy_returned_as_is_aliases_the_caller():
    """An identity function's result is the caller's tensor again, as through rt_mod; a copy
    kept in any other way (here in a list) is refused."""
    echo = tvm_ffi.get_global_func("testing.echo")
    f = tvmfast.bind(echo, alignment=64)
    _, x = misaligned_torch(16)
    y = f(x)
    assert y.data_ptr() == x.data_ptr() == echo(x).data_ptr()
    y[3] = 42.0
    assert x[3] == 42.0
    in_list = tvmfast.bind(tvm_ffi.convert(lambda t: [t]), alignment=64)
    raises_arg_error(lambda: in_list(x), 0, "kept")
    # With no alignment assumed (the default for a tvm_ffi.Function), as tvm_ffi: no copy.
    assert tvmfast.bind(echo)(x).data_ptr() == x.data_ptr()


# ---------------------------------------------------------------------------
# 7. The GIL: released around the call by default, as tvm_ffi does.
# ---------------------------------------------------------------------------
def _case_callback_on_worker_thread():
    calls = []
    cb = tvm_ffi.convert(lambda: calls.append(threading.get_ident()))
    f = tvmfast.bind(cpp("call_on_worker"))
    assert f.release_gil is True
    f(cb)
    tvmfast.bind(cpp("call_on_worker")).prepare(cb)()
    assert len(calls) == 2 and threading.get_ident() not in calls


def _case_kept_tensor_released_on_worker_thread():
    x = torch.randn(8)
    tvmfast.bind(cpp("keep"))(x)
    del x
    gc.collect()
    tvmfast.bind(cpp("drop_kept_on_worker"))()  # the deleter takes the GIL on the worker


def test_no_deadlock_where_tvm_ffi_returns(env):
    assert_all_ok(run_isolated("test_reliability", ["_case_callback_on_worker_thread",
                                                    "_case_kept_tensor_released_on_worker_thread"],
                               env=env, timeout=120))


def test_release_gil_default_follows_the_function():
    fn = cpp("add_one")
    assert tvmfast.bind(fn).release_gil == fn.release_gil
    assert tvmfast.bind(fn, release_gil=False).release_gil is False
    other = tvm_ffi.get_global_func("testing.echo")
    other.release_gil = False
    assert tvmfast.bind(other).release_gil is False


# ---------------------------------------------------------------------------
# 8. First torch use from several threads at once.
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
    f = tvmfast.bind(cpp("add_one"))
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


def test_first_torch_use_from_threads(env):
    for direct in ("1", "0"):
        e = dict(env, TVMFAST_TORCH_DIRECT=direct)
        assert_all_ok(run_isolated("test_reliability", ["_case_first_use_race"], env=e, timeout=120))


# ---------------------------------------------------------------------------
# 9. Result conversion never exports an argument again.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("returns", ["str", "array", "tensor", "int"])
def test_result_conversion_after_callback_changed_an_argument(returns):
    def make(x):
        def callback(t):
            x.data = torch.zeros(3, dtype=torch.bits8)  # a dtype DLPack lacks: x no longer exports
            kept = torch.arange(4.0)
            return {"str": "done", "array": [kept, 2], "tensor": kept, "int": 7}[returns]
        return tvm_ffi.convert(callback)

    x1, x2 = torch.randn(4), torch.randn(4)
    ours = tvmfast.bind(make(x1))(x1)
    theirs = make(x2)(x2)
    assert type(ours) is type(theirs)
    if returns == "array":
        assert type(ours[0]) is type(theirs[0]) and torch.equal(ours[0], theirs[0]) and ours[1] == theirs[1]
    elif returns == "tensor":
        assert torch.equal(ours, theirs)
    else:
        assert ours == theirs


# ---------------------------------------------------------------------------
# 10. torch.Tensor subclasses are torch tensors, wherever defined.
# ---------------------------------------------------------------------------
class MySub(torch.Tensor):
    pass


def _case_subclass_lazy_view_refused():
    f = tvmfast.bind(cpp("add_one"))
    x = torch.randn(16)
    neg = torch._neg_view(x).as_subclass(MySub)
    raises_arg_error(lambda: f(neg, torch.empty(16)), 0, "negative bit", "resolve_neg")
    out = torch.full((16,), float("nan"))
    f(x.as_subclass(MySub), out)
    assert torch.equal(out, x + 1)


def test_subclass_lazy_view(env):
    for direct in ("1", "0"):
        e = dict(env, TVMFAST_TORCH_DIRECT=direct)
        assert_all_ok(run_isolated("test_reliability", ["_case_subclass_lazy_view_refused"], env=e))


# ---------------------------------------------------------------------------
# Also: capsule errors of tvm_ffi's type; crash cases in children.
# ---------------------------------------------------------------------------
def test_misnamed_exchange_capsule_raises_tvm_ffis_type():
    import ctypes  # noqa: PLC0415

    capsule = ctypes.pythonapi.PyCapsule_New
    capsule.restype = ctypes.py_object
    capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

    class Misnamed:
        __dlpack_c_exchange_api__ = capsule(ctypes.addressof(ctypes.c_int(1)), b"not_the_name", None)

        def __dlpack__(self, **kwargs):
            return torch.zeros(4).__dlpack__(**kwargs)

    fn = tvm_ffi.get_global_func("testing.echo")
    with pytest.raises(Exception) as theirs:
        fn(Misnamed())
    with pytest.raises(Exception) as ours:
        tvmfast.bind(fn)(Misnamed())
    assert type(ours.value) is type(theirs.value) is ValueError
    assert str(ours.value).startswith("tvmfast: argument #0: ")


def test_crash_cases_in_children(env):
    assert_all_ok(run_isolated("test_reliability", [
        "_case_negative_strides_numpy",
        "_case_negative_strides_tvm_kernel_error_first",
        "_case_misaligned_empty_storage",
    ], env=env, timeout=180))


# ---------------------------------------------------------------------------
# Review findings: storage spans, broadcast views, alignment bounds, variadic callees,
# storage swapped during the call, tvm_ffi.Function subclasses.
# ---------------------------------------------------------------------------
def _case_shrunk_storage_under_a_strided_view():
    """The storage check covers the bytes the elements span, not offset + numel."""
    n = 200_000
    t = torch.zeros(4 * n + 1)[1::4]
    t.untyped_storage().resize_((1 + n) * 4)
    raises_arg_error(lambda: tvmfast.bind(cpp("add_one"), alignment=64)(t, torch.empty(n)), 0,
                     "storage does not hold")


def _case_storage_swapped_by_a_callback_during_the_call():
    """A callback gives the misaligned argument other storage mid-call: the write-back goes to
    the memory the copy came from, which the producer keeps alive (no use after free)."""
    _, x = misaligned_torch(4096)

    def callback(t):
        x.set_(torch.zeros(8))  # x's old storage loses its last Python-side owner
        view = torch.from_dlpack(t)
        view.fill_(3.0)
        del view
        import gc  # noqa: PLC0415

        gc.collect()

    tvmfast.bind(tvm_ffi.convert(callback), alignment=64)(x)
    assert torch.equal(x, torch.zeros(8))


def test_review_crash_cases_in_children(env):
    assert_all_ok(run_isolated("test_reliability", ["_case_shrunk_storage_under_a_strided_view",
                                                    "_case_storage_swapped_by_a_callback_during_the_call"],
                               env=env, timeout=180))


def test_misaligned_broadcast_view_is_copied_by_its_distinct_elements():
    echo = tvm_ffi.get_global_func("testing.echo")
    f = tvmfast.bind(echo, alignment=64)
    bias = torch.arange(8.0)[1:5]
    b = bias.unsqueeze(0).expand(16, 4)  # 64 elements over 4 distinct ones, misaligned
    out = f(b)
    ref = echo(b)
    assert out.shape == ref.shape and out.stride() == ref.stride() and torch.equal(out, ref)
    base = np.zeros(32, dtype=np.float32)
    huge = np.lib.stride_tricks.as_strided(base[1:], shape=(1 << 40,), strides=(0,), writeable=True)
    assert f(huge).shape == (1 << 40,)  # one element to copy, not 2**40


def test_alignment_is_bounded():
    echo = tvm_ffi.get_global_func("testing.echo")
    for bad in (3, 0, 1 << 13, 1 << 64, 2.0):
        with pytest.raises(ValueError, match="power of two from 1 to 4096"):
            tvmfast.bind(echo, alignment=bad)
    assert tvmfast.bind(echo, alignment=4096).alignment == 4096


def test_prepare_of_a_variadic_function_after_calls_of_other_counts():
    f = tvmfast.bind(tvm_ffi.convert(lambda *args: len(args)))
    assert f(1, 2) == 2 and f(1, 2, 3) == 3
    assert f.prepare(1, 2)() == 2


def test_function_subclass_overriding_call_keeps_its_call():
    """A tvm_ffi.Function subclass that converts arguments in its own __call__ (as CuTe DSL's
    compiled functions without a keyword wrapper do) is called through that __call__."""

    class Doubling(tvm_ffi.Function):
        def __call__(self, *args):
            return super().__call__(*[a * 2 for a in args])

    fn = Doubling.__new__(Doubling)
    fn.__move_handle_from__(tvm_ffi.convert(lambda x: x + 1))
    assert fn(3) == 7
    f = tvmfast.bind(fn)
    assert f(3) == 7 and f(10) == 21
