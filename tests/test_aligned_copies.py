"""Misaligned CPU data, for functions that assume alignment (bind's ``alignment``: 64 for a TVM
module's functions), follows the rule of docs/safety.md ("Misaligned data"): an aligned copy with
the tensor's own layout where that copy is indistinguishable from the caller's memory, written
back afterwards; a ValueError naming the argument where it would not be (bytes shared with another
argument, elements far apart, a copy the callee kept).  rt_mod itself crashes on misaligned data
with kernels that assume alignment, so those cases are compared with the function called on
aligned data, or with a function that takes any address called directly.

Covered: torch and numpy views (numpy without torch too), the same tensor twice, negative strides,
gaps, storage shrunk or swapped under the copy, broadcast views, callbacks that update, keep or
view the copy, the bounds of ``alignment``, torch custom ops (eager, compiled, an AOTInductor
package's constants), and a hypothesis fuzz of misaligned, aliased, negatively strided and gapped
views.  Cases that can crash run in a child process (support.isolation.run_isolated).
"""
from __future__ import annotations

import gc
import itertools
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tvm_ffi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tvmfast
from support import isolation
from support import tvm_kernels as kernels
from support.buffers import aligned, same_bits, torch_at
from support.cpp_sources import ADD_ONE
from support.helpers import nan_like, needs_tvm, raises_arg_error
from support.isolation import WORKER_CPP, run_forked

try:
    import torch
except ImportError:  # only the numpy test runs without torch: the others are marked needs_torch
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
cpp = WORKER_CPP.function  # add_one: y = x + 1 at any address; size0: reads only the shape


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment for child processes: support.isolation.WORKER_CPP's C++ functions."""
    return WORKER_CPP.env(tmp_path_factory)


def child_main(names: list[str]) -> None:
    isolation.run_cases(sys.modules[__name__], names)


def misaligned_torch(n: int, offset: int = 3, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(buffer, view): a fresh random 1-D view of n elements (float32 unless told) starting `offset`
    elements into a 64-byte aligned torch buffer, so its data is not 64-byte aligned."""
    buf = torch.randn(n + offset + 16).to(torch.float32 if dtype is None else dtype)
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


# ---------------------------------------------------------------------------
# Views of a TVM kernel's arguments: an aligned copy, outputs written back
# ---------------------------------------------------------------------------


@needs_torch
def test_misaligned_views_go_through_an_aligned_copy(add_mod, gen):
    """Default TVM buffers assume 64-byte aligned data (a misaligned view can crash
    rt_mod): tvmfast hands the kernel an aligned copy, and writes outputs back."""
    f = tvmfast.bind(add_mod)
    assert f.alignment == 64
    big = torch.randn(300, generator=gen)
    b = torch.randn(128, generator=gen)
    for start in [1, 3, 17, 16]:
        a = big[start:start + 128]
        assert a.data_ptr() % 64 != 0 or start == 16
        out = nan_like(b)
        f(a, b, out)
        assert torch.equal(out, a + b)
    # A misaligned output is written back; the memory around it is untouched.
    dest = torch.full((300,), float("nan"))
    f(big[:128], b, dest[5:133])
    assert torch.equal(dest[5:133], big[:128] + b)
    assert torch.isnan(dest[:5]).all()
    assert torch.isnan(dest[133:]).all()
    # In-place: an argument that is both input and output.
    x = torch.randn(300, generator=gen)[7:135]
    expect = x + b
    f(x, b, x)
    assert torch.equal(x, expect)
    with pytest.raises(ValueError, match="power of two"):
        tvmfast.bind(add_mod, alignment=3)


@needs_torch
def test_misaligned_strided_view_gets_tvms_own_error(add_mod, gen):
    """TVM's checks come first: a non-compact view gets TVM's stride error, aligned or not."""
    f = tvmfast.bind(add_mod)
    a = torch.randn(128, generator=gen)
    bad = torch.randn(600, generator=gen)[3:259:2]
    with pytest.raises(ValueError) as ours:
        f(a, a, bad)
    with pytest.raises(ValueError) as theirs:
        add_mod(a, a, bad)
    assert str(ours.value) == str(theirs.value)


def test_misaligned_numpy_output_is_written_back(add_mod, rng):
    """A numpy view off the kernel's 64-byte alignment goes through an aligned copy, and the
    result lands in the caller's array."""
    f = tvmfast.bind(add_mod)
    a = aligned(rng.standard_normal(128, dtype=np.float32))
    b = aligned(rng.standard_normal(128, dtype=np.float32))
    backing = aligned(np.full(129, np.nan, dtype=np.float32))
    out = backing[1:]  # 4 bytes past a 64-byte boundary
    assert out.ctypes.data % 64 == 4
    f(a, b, out)
    np.testing.assert_array_equal(out, a + b)
    assert np.isnan(backing[0])


@pytest.fixture
def seed():
    value = torch.seed() % (2**31)
    print(f"row seed {value}")
    return value


@needs_torch
@pytest.mark.parametrize("offset_elems", [1, 2, 3, 5])
def test_misaligned_data_for_a_kernel_that_assumes_alignment(add_mod, offset_elems, seed):
    """rt_mod crashes on data that its default buffers assume aligned (not compared: it
    segfaults); bind must not: it gives rt_mod's result on aligned copies, or a ValueError."""
    rt_mod, bound = add_mod, tvmfast.bind(add_mod)

    def body(phase):
        g = torch.Generator().manual_seed(seed)
        a, b = torch_at(g, 128, offset_elems), torch_at(g, 128, offset_elems)
        out = torch_at(g, 128, offset_elems).fill_(math.nan)
        ref = torch.full((128,), math.nan)
        phase("rt_mod on aligned copies")
        rt_mod(a.clone(), b.clone(), ref)
        phase("bind on misaligned views")
        try:
            bound(a, b, out)
        except ValueError as e:
            assert "align" in str(e), f"ValueError without the reason: {e}"
            return
        assert same_bits(out, ref), torch.testing.assert_close(out, ref, rtol=0, atol=0)

    run_forked(body, 300)


# ---------------------------------------------------------------------------
# The same misaligned tensor twice: one copy, as one memory for rt_mod
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def increment_both():
    pytest.importorskip("tvm", reason="apache-tvm builds the test kernel")
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


@needs_torch
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


@needs_torch
def test_same_elements_as_input_and_output():
    f = add_one_at_64()
    _, x = misaligned_torch(100)
    expect = x + 1
    f(x, x)
    assert torch.equal(x, expect)


# ---------------------------------------------------------------------------
# Negative strides: the copy covers the elements below the data pointer
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
# Gaps: only the elements are copied and written back
# ---------------------------------------------------------------------------


@needs_torch
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


@needs_torch
def test_aligned_output_inside_misaligned_input_span_is_refused():
    f = add_one_at_64()
    buf = torch.randn(160)  # 64-byte aligned: buf[16] is aligned, buf[1] is not
    before = buf.clone()
    raises_arg_error(lambda: f(buf[1:65], buf[16:80]), 0, "shares memory with argument #1")
    raises_arg_error(lambda: f(buf[16:80], buf[1:65]), 1, "shares memory with argument #0")
    assert torch.equal(buf, before)


@needs_torch
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


@needs_torch
def test_crash_cases_in_children(env):
    isolation.assert_all_ok(isolation.run_isolated("test_aligned_copies", [
        "_case_negative_strides_numpy",
        "_case_misaligned_empty_storage",
    ], env=env, timeout=180))


@needs_torch
@needs_tvm
def test_crash_cases_with_a_tvm_kernel_in_children(env):
    isolation.assert_all_ok(isolation.run_isolated("test_aligned_copies", [
        "_case_negative_strides_tvm_kernel_error_first",
    ], env=env, timeout=180))


# ---------------------------------------------------------------------------
# Storage shrunk or swapped under the copy; broadcast views; the alignment's bounds
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


@needs_torch
def test_storage_changes_under_the_copy_in_children(env):
    cases = ["_case_shrunk_storage_under_a_strided_view", "_case_storage_swapped_by_a_callback_during_the_call"]
    isolation.assert_all_ok(isolation.run_isolated("test_aligned_copies", cases, env=env, timeout=180))


@needs_torch
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


@needs_torch
def test_alignment_is_bounded():
    echo = tvm_ffi.get_global_func("testing.echo")
    for bad in (3, 0, 1 << 13, 1 << 64, 2.0):
        with pytest.raises(ValueError, match="power of two from 1 to 4096"):
            tvmfast.bind(echo, alignment=bad)
    assert tvmfast.bind(echo, alignment=4096).alignment == 4096


# ---------------------------------------------------------------------------
# Callbacks: concurrent updates kept; a kept copy or view refused
# ---------------------------------------------------------------------------


@needs_torch
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


@needs_torch
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


@needs_torch
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


@needs_torch
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
# torch custom ops: torch.from_numpy views, AOTInductor constants
# ---------------------------------------------------------------------------


NS = "tvmfast_test_aligned_op"
_IDS = itertools.count()


def fresh_name(stem):
    """A new op name: an op's definition lives as long as the process."""
    return f"{NS}::{stem}{next(_IDS)}"


@pytest.fixture(scope="module")
def add_f():
    return tvmfast.bind(kernels.build_add(128), num_args=3)


@pytest.fixture(scope="module")
def add_op(add_f):
    return add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))


def misaligned(values):
    """A CPU tensor holding ``values`` whose data is 4 bytes past a 64-byte boundary (a numpy view)."""
    buf = np.empty(values.numel() + 32, dtype=np.float32)
    start = next(i for i in range(1, 17) if (buf.ctypes.data + 4 * i) % 64 == 4)
    t = torch.from_numpy(buf[start:start + values.numel()])
    t.copy_(values)
    assert t.data_ptr() % 64 == 4
    return t


@needs_torch
def test_misaligned_tensors_eager_and_compiled(add_f, add_op, gen):
    assert add_f.alignment == 64
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    ma, mout = misaligned(a), misaligned(torch.full((128,), float("nan")))
    add_op(ma, b, mout)  # read and written through an aligned copy
    assert torch.equal(mout, a + b)
    torch._dynamo.reset()

    def model(x, y, out):
        add_op(x, y, out)
        return out * 2

    compiled = torch.compile(model, backend="inductor", fullgraph=True)
    mout2 = misaligned(torch.full((128,), float("nan")))
    torch.testing.assert_close(compiled(ma, b, mout2), 2 * (a + b))
    assert torch.equal(mout2, a + b)


AOTI_LOAD = '''
import sys
import torch
import tvmfast
from torch.utils._python_dispatch import TorchDispatchMode

folder = sys.argv[1]
op = tvmfast.bind(folder + "/add.so", num_args=3).as_torch_op("{name}", mutates_args=(2,))
data = torch.load(folder + "/data.pt")
model = torch._inductor.aoti_load_package(folder + "/model.pt2")
ok = torch.equal(model(data["x"]), data["expected"])


class Alignment(TorchDispatchMode):
    seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is op:
            self.seen.update(a.data_ptr() % 64 for a in args)
        return func(*args, **(kwargs or {{}}))


with Alignment():  # the constants' addresses (a dispatch mode takes another path: the result is checked above)
    model(data["x"])
print("RESULT", "right" if ok else "WRONG", max(Alignment.seen))
'''


@needs_torch
@pytest.mark.slow
@needs_tvm
def test_aoti_package_reading_module_constants_runs_right_on_fresh_loads(tmp_path, gen):
    """torch.export + AOTInductor: the op reads a buffer and a parameter, which a loaded package holds as
    constants 16-byte aligned at best; every fresh load (a new process) computes the right result."""
    name = fresh_name("aoti_add")
    kernels.build_add(128).export_library(str(tmp_path / "add.so"))
    op = tvmfast.bind(str(tmp_path / "add.so"), num_args=3).as_torch_op(name, mutates_args=(2,))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.randn(128, generator=gen))
            self.p = torch.nn.Parameter(torch.randn(128, generator=gen), requires_grad=False)

        def forward(self, x):
            out = torch.empty_like(x)
            op(x, self.w, out)
            out2 = torch.empty_like(x)
            op(out, self.p, out2)
            return out2 * 2

    model = Model()
    x = torch.randn(128, generator=gen)
    expected = (x + model.w + model.p) * 2
    torch.testing.assert_close(model(x), expected)
    exported = torch.export.export(model, (x,))
    torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp_path / "model.pt2"))
    torch.save({"x": x, "expected": model(x)}, tmp_path / "data.pt")
    script = tmp_path / "load.py"
    script.write_text(AOTI_LOAD.format(name=name))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.getcwd(), os.environ.get("PYTHONPATH")] if p))
    offsets = []
    for _ in range(10):
        res = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env)
        line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
        assert res.returncode == 0 and line is not None, res.stderr[-3000:]
        _, verdict, offset = line.split()
        assert verdict == "right", line
        offsets.append(int(offset))
    print("largest argument address % 64 per load:", offsets)


# ---------------------------------------------------------------------------
# misaligned, aliased, negatively strided and gapped views, generated by hypothesis
# ---------------------------------------------------------------------------


# Each example lays a call's tensor arguments out in a few 64-byte aligned torch buffers:
# views at element offsets 1..15 (misaligned) or at multiples of 16 (aligned), gapped
# ([::2], every 5th, rows of a wide matrix: "far"), transposed (2-D), with negative strides
# (numpy views of the torch buffers: torch has none), and aliased (the same object twice,
# another object with the same elements, overlapping views, the same first element with
# other strides, the same elements reversed, an aligned view inside another view's span).  The call must either do
# what the callee does on aligned memory (TVM kernels with default buffers segfault on
# misaligned data, so their reference runs on aligned copies with the same strides), every
# buffer compared bit for bit (outputs poisoned with NaN, gaps and the memory around the
# views untouched), or raise what the rule allows (docs/safety.md, "Misaligned data"):
# a ValueError "tvmfast: argument #p: ..." for a misaligned tensor whose copy would be wrong
# (bytes shared with another argument other than the very same elements passed again: a
# must; a span that only interleaves with another's: a may), whose elements lie far apart,
# or that the callee kept; or the same error as the reference (TVM's own checks see the
# copy's strides, which are the view's).  Refcounts of the arguments are unchanged.

VIEW_EXAMPLES = 600
VIEW_LIBS_ENV = "TVMFAST_FUZZ_VIEW_LIBS"
FAR_STRIDE = 1031  # elements between a "far" view's elements (1-D) or rows (2-D)
ADD2D_SHAPE = (12, 20)
ADD2D_SRC = f'''
@T.prim_func
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    A = T.match_buffer(a, {ADD2D_SHAPE}, "float32")
    B = T.match_buffer(b, {ADD2D_SHAPE}, "float32")
    C = T.match_buffer(c, {ADD2D_SHAPE}, "float32")
    for i, j in T.grid({ADD2D_SHAPE[0]}, {ADD2D_SHAPE[1]}):
        C[i, j] = A[i, j] + B[i, j]
'''
VIEW_CPP_NAME = "tvmfast_fuzz_views"
VIEW_CPP_FUNCTIONS = ["add_one", "add_one_2d", "identity", "pair"]
VIEW_CPP_SOURCE = r"""
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>

namespace ffi = tvm::ffi;

""" + ADD_ONE + r"""

// The same on 2-D tensors (row by row, in index order).
void add_one_2d(ffi::TensorView x, ffi::TensorView y) {
  DLDataType f32{kDLFloat, 32, 1};
  TVM_FFI_ICHECK(x.ndim() == 2 && y.ndim() == 2) << "x and y must be 2D tensors";
  TVM_FFI_ICHECK(x.dtype() == f32 && y.dtype() == f32) << "x and y must be float32 tensors";
  TVM_FFI_ICHECK(x.size(0) == y.size(0) && x.size(1) == y.size(1)) << "x and y must have the same shape";
  const float* xp = reinterpret_cast<const float*>(static_cast<const char*>(x.data_ptr()) + x.byte_offset());
  float* yp = reinterpret_cast<float*>(static_cast<char*>(y.data_ptr()) + y.byte_offset());
  for (int64_t i = 0; i < x.size(0); ++i) {
    for (int64_t j = 0; j < x.size(1); ++j) {
      yp[i * y.stride(0) + j * y.stride(1)] = xp[i * x.stride(0) + j * x.stride(1)] + 1;
    }
  }
}

ffi::Tensor identity(ffi::Tensor x) { return x; }

ffi::Array<ffi::Tensor> pair(ffi::Tensor a, ffi::Tensor b) { return {a, b}; }
"""
# name: (callee, bind's alignment (None: its default), ndim, arity, output position, reference)
# reference "aligned": the callee on aligned copies with the same strides (it crashes on
# misaligned data); "direct": the callee itself on the same views (it takes any address).
# identity returns its argument: the caller's tensor, also where it was passed as a copy;
# pair keeps its arguments (in the Array it returns): a copy it keeps must raise "kept".
VIEW_KERNELS = {
    "add": ("tvm:add", None, 1, 3, 2, "aligned"),
    "add_dyn": ("tvm:add_dyn", None, 1, 3, 2, "aligned"),
    "add2d": ("tvm:add2d", None, 2, 3, 2, "aligned"),
    "add_any:1": ("tvm:add_any", 1, 1, 3, 2, "direct"),
    "add_any:64": ("tvm:add_any", None, 1, 3, 2, "direct"),
    "add_one:1": ("cpp:add_one", None, 1, 2, 1, "direct"),
    "add_one:64": ("cpp:add_one", 64, 1, 2, 1, "direct"),
    "add_one_2d:1": ("cpp:add_one_2d", None, 2, 2, 1, "direct"),
    "add_one_2d:64": ("cpp:add_one_2d", 64, 2, 2, 1, "direct"),
    "identity:1": ("cpp:identity", None, 1, 1, None, "direct"),
    "identity:64": ("cpp:identity", 64, 1, 1, None, "direct"),
    "pair:1": ("cpp:pair", None, 1, 2, None, "direct"),
    "pair:64": ("cpp:pair", 64, 1, 2, None, "direct"),
}
# where an argument lives: its own buffer, or relative to an earlier argument ("of"): in its
# buffer anywhere, the same object, another object with the same elements, the same first
# element with other strides, its elements in reverse order, an aligned contiguous view
# starting inside its span
VIEW_SOURCES = ["fresh", "share", "share", "same", "twin", "same_start", "reversed", "inside"]
# element offsets: a third misaligned, a third aligned, a third anywhere in the first 48
_OFFSETS = st.one_of(st.integers(1, 15), st.sampled_from([0, 16, 32]), st.integers(0, 47))

_views: dict = {"libs": None, "funcs": None, "examples": 0, "refused": 0}


def _build_view_libs(directory: str) -> dict:
    libs = {}
    for name, build in {"add_any": lambda: kernels.build_add(isolation.N, offset_factor=1),
                        "add2d": lambda: kernels._build(ADD2D_SRC, "llvm")}.items():
        libs[name] = os.path.join(directory, f"{name}.so")
        build().export_library(libs[name])
    libs["cpp"] = tvm_ffi.cpp.build_inline(VIEW_CPP_NAME, cpp_sources=VIEW_CPP_SOURCE, functions=VIEW_CPP_FUNCTIONS,
                                           build_directory=os.path.join(directory, "cpp"))
    return libs


@pytest.fixture(scope="module")
def view_env(tmp_path_factory):
    """The test kernels and C++ functions (support.isolation.child_env) plus the view cases' own
    callees, built once here and loaded by the child."""
    env = isolation.child_env(tmp_path_factory)
    libs = _build_view_libs(str(tmp_path_factory.mktemp("fuzz_view_libs")))
    return {**env, VIEW_LIBS_ENV: json.dumps(libs)}


def _view_callee(callee: str):
    kind, name = callee.split(":")
    if name in ("add", "add_dyn"):
        return isolation.kernel(name)
    if _views["libs"] is None:
        libs = json.loads(os.environ.get(VIEW_LIBS_ENV) or "{}")
        if not libs:  # run in-process (not through view_env): build them here
            import tempfile  # noqa: PLC0415

            libs = _build_view_libs(tempfile.mkdtemp(prefix="tvmfast_fuzz_views"))
        _views["libs"] = {k: tvm_ffi.load_module(v) for k, v in libs.items()}
    mod = _views["libs"]["cpp" if kind == "cpp" else name]
    return mod[name] if kind == "cpp" else mod


def _view_functions() -> dict:
    """name -> (the callee called directly, the bound function)."""
    if _views["funcs"] is None:
        funcs = {}
        for name, (callee, alignment, _, arity, _, _) in VIEW_KERNELS.items():
            direct = _view_callee(callee)
            bound = tvmfast.bind(direct, num_args=arity, alignment=alignment)
            module_default = callee.startswith("tvm:") and alignment is None
            assert bound.alignment == (64 if name.endswith(":64") or module_default else 1), (name, bound.alignment)
            funcs[name] = (direct, bound)
        _views["funcs"] = funcs
    return _views["funcs"]


@st.composite
def view_specs(draw):
    kernel = draw(st.sampled_from(sorted(VIEW_KERNELS)))
    _, _, ndim, arity, _, _ = VIEW_KERNELS[kernel]
    if kernel in ("add", "add_any:1", "add_any:64"):
        shape = [isolation.N]
    elif kernel == "add2d":
        shape = list(ADD2D_SHAPE)
    elif ndim == 1:
        shape = [draw(st.one_of(st.integers(0, 3), st.integers(4, 200)))]
    else:
        shape = [draw(st.integers(0, 12)), draw(st.integers(0, 20))]
    args = []
    for pos in range(arity):
        args.append({
            "source": draw(st.sampled_from(VIEW_SOURCES)) if pos else "fresh",
            "of": draw(st.integers(0, pos - 1)) if pos else 0,
            "offset": draw(_OFFSETS),
            "numpy": draw(st.booleans()),
            "flip": draw(st.booleans()),  # negative stride (numpy only)
            "gap": draw(st.sampled_from([1, 1, 2, 5])),
            "transpose": ndim == 2 and draw(st.booleans()),
            "far": draw(st.sampled_from([False] * 7 + [True])),
        })
    return {
        "kernel": kernel,
        "shape": shape,
        "args": args,
        "form": draw(st.sampled_from(["dynamic", "dynamic", "frozen", "prepared"])),
        "frozen": sorted(draw(st.sets(st.integers(0, arity - 1), min_size=1, max_size=arity))),
        "calls": draw(st.integers(1, 2)),
    }


def _view_strides(shape: list, a: dict) -> list:
    """Element strides of a view drawn as a: gapped by a["gap"], rows FAR_STRIDE apart if far,
    transposed, the first dimension reversed if flip (numpy only)."""
    gap = a["gap"]
    if len(shape) == 1:
        strides = [FAR_STRIDE if a["far"] else gap]
    else:
        cols = shape[0] if a["transpose"] else shape[1]  # of the row-major block the view is taken from
        strides = [FAR_STRIDE if a["far"] else gap * cols, gap]
        if a["transpose"]:
            strides.reverse()
    if a["flip"] and a["numpy"]:
        strides[0] = -strides[0]
    return strides


def _reach(shape: list, strides: list) -> tuple[int, int]:
    """(elements before the first one, elements after it) a view reaches in its buffer."""
    steps = [(d - 1) * s for d, s in zip(shape, strides)] if all(shape) else []
    return -sum(x for x in steps if x < 0), sum(x for x in steps if x > 0)


def _other_strides(strides: list) -> list:
    """Strides other than these (the same first element and shape, other elements)."""
    if len(strides) == 2:
        return [strides[1], strides[0]]
    s = strides[0]
    return [s * 2 if abs(s) == 1 else (1 if s > 0 else -1)]


def place_views(spec) -> tuple[list, list]:
    """(per argument {"buf", "first", "strides", "numpy"} or {"same": j}, buffer lengths):
    where each argument's elements lie in which buffer (element indices)."""
    shape = spec["shape"]
    placed: list = []
    n_bufs = 0
    for a in spec["args"]:
        j = a["of"]
        while "same" in (placed[j] if placed else {}):
            j = placed[j]["same"]
        base = placed[j] if placed else None
        source = a["source"]
        if source == "same":
            placed.append({"same": j})
            continue
        strides = _view_strides(shape, a)
        if source == "fresh":
            buf, first = n_bufs, a["offset"] + _reach(shape, strides)[0]
            n_bufs += 1
        elif source == "share":
            buf, first = base["buf"], a["offset"] + _reach(shape, strides)[0]
        elif source == "twin":
            buf, first, strides = base["buf"], base["first"], list(base["strides"])
        elif source == "same_start":
            buf, first, strides = base["buf"], base["first"], _other_strides(base["strides"])
        elif source == "reversed":  # its elements in the opposite order (x[::-1])
            steps = sum((d - 1) * s for d, s in zip(shape, base["strides"])) if all(shape) else 0
            buf, first, strides = base["buf"], base["first"] + steps, [-s for s in base["strides"]]
        elif source == "inside":
            lo = base["first"] - _reach(shape, base["strides"])[0]
            buf, first, strides = base["buf"], (lo + 15) // 16 * 16, [1] if len(shape) == 1 else [shape[1], 1]
        else:
            raise AssertionError(source)
        numpy = min(strides) < 0 or (not base["numpy"] if source == "twin" else a["numpy"])
        placed.append({"buf": buf, "first": first, "strides": strides, "numpy": numpy})
    if spec["kernel"].startswith("pair") and any(min(p.get("strides", [0])) < 0 for p in placed):
        # pair's items become torch tensors where a torch tensor is among the arguments, and
        # torch.from_dlpack aborts the process on negative strides (rt_mod's result too)
        for p in placed:
            if "same" not in p:
                p["numpy"] = True
    # shift each buffer by whole 64-byte lines so that every view lies inside it
    lengths = []
    for buf in range(n_bufs):
        mine = [p for p in placed if p.get("buf") == buf]
        reach = [(p["first"] - _reach(shape, p["strides"])[0], p["first"] + _reach(shape, p["strides"])[1])
                 for p in mine]
        shift = (-min(lo for lo, _ in reach) + 15) // 16 * 16 if min(lo for lo, _ in reach) < 0 else 0
        for p in mine:
            p["first"] += shift
        lengths.append(max(hi for _, hi in reach) + shift + 1 + 16)  # 16 elements after the last view
    return placed, lengths


def make_views(spec, placed: list, bufs: list) -> list:
    """The argument objects: torch views of the buffers, or numpy views of them."""
    objs: list = []
    for p in placed:
        if "same" in p:
            objs.append(objs[p["same"]])
        elif p["numpy"]:
            whole = bufs[p["buf"]].numpy()
            objs.append(np.lib.stride_tricks.as_strided(whole[p["first"]:], spec["shape"],
                                                        [4 * s for s in p["strides"]]))
        else:
            objs.append(bufs[p["buf"]].as_strided(spec["shape"], p["strides"], p["first"]))
    return objs


def _np(x) -> np.ndarray:
    """A numpy view of a view (the same memory)."""
    return x if isinstance(x, np.ndarray) else x.numpy()


def _layout(x) -> tuple[int, tuple, tuple]:
    """(address of the first element, shape, strides in elements) of a float32 view."""
    if isinstance(x, np.ndarray):
        return x.__array_interface__["data"][0], x.shape, tuple(s // x.itemsize for s in x.strides)
    return x.data_ptr(), tuple(x.shape), tuple(x.stride())


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _compact(shape, strides) -> bool:
    """tvmfast_is_compact: row-major without gaps (size-1 dimensions take any stride)."""
    expected = 1
    for d, s in reversed(list(zip(shape, strides))):
        if d != 1 and s != expected:
            return False
        expected *= d
    return True


def _compact_strides(shape) -> list:
    return [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]


def _span(x) -> tuple[int, int]:
    """[lo, hi) bytes the view's elements lie in (tvmfast_byte_range; lo == hi when empty)."""
    ptr, shape, strides = _layout(x)
    if _numel(shape) == 0:
        return ptr, ptr
    if _compact(shape, strides):
        return ptr, ptr + 4 * _numel(shape)
    before, after = _reach(list(shape), list(strides))
    return ptr - 4 * before, ptr + 4 * after + 4


def _addresses(x) -> set:
    ptr, shape, strides = _layout(x)
    index = np.indices(shape).reshape(len(shape), -1)
    return set((ptr + 4 * (np.asarray(strides, dtype=np.int64) @ index)).tolist())


def _same_elements(x, y) -> bool:
    """The very same elements in the same order (what an in-place k(x, x) passes)."""
    (px, sx, tx), (py, sy, ty) = _layout(x), _layout(y)
    return px == py and sx == sy and all(a == b for d, a, b in zip(sx, tx, ty) if d > 1)


def view_refusals(objs: list, alignment: int) -> tuple[dict, dict]:
    """({position: reasons} tvmfast must refuse, {position: reasons} it may refuse) under the
    rule: a misaligned tensor whose elements lie far apart, or whose bytes overlap another
    argument's other than the very same elements passed again.  Where the spans overlap
    but no element is shared (interleaved gaps) a refusal is allowed, not required."""
    must: dict = {}
    may: dict = {}
    for p, x in enumerate(objs):
        ptr, shape, strides = _layout(x)
        if _numel(shape) == 0 or ptr % alignment == 0:
            continue
        lo, hi = _span(x)
        if not _compact(shape, strides) and hi - lo > 4 * 4 * _numel(shape) and hi - lo > 1 << 16:
            must.setdefault(p, set()).add("far apart")
        for k, y in enumerate(objs):
            ylo, yhi = _span(y)
            if k == p or not (ylo < yhi and lo < yhi and ylo < hi) or _same_elements(x, y):
                continue
            target = must if _addresses(x) & _addresses(y) else may
            target.setdefault(p, set()).add("shares memory")
    for p, reasons in must.items():
        may.setdefault(p, set()).update(reasons)
    return must, may


def _aligned_copy(x) -> np.ndarray:
    """A copy of view x at a 64-byte aligned address, with x's shape and strides."""
    _, shape, strides = _layout(x)
    before, after = _reach(list(shape), list(strides))
    start = -before % 16
    whole = torch.empty(start + before + after + 1).numpy()
    copy = np.lib.stride_tricks.as_strided(whole[start + before:], shape, [4 * s for s in strides])
    copy[...] = _np(x)
    return copy


def view_reference(spec, placed: list, bufs: list, direct, alignment: int):
    """("ok", result) or ("error", exception) of the callee on clones of the buffers, which
    it changes as the call must change the originals ("aligned": misaligned views replaced
    by aligned copies with their strides, the same elements sharing one copy)."""
    objs = make_views(spec, placed, bufs)
    # tvmfast passes an empty torch tensor with compact strides (test_torch_ops.py's
    # test_zero_size_dimensions: TVM would refuse the arbitrary ones torch leaves on it)
    empties: dict = {}
    objs = [empties.setdefault(id(x), x.as_strided(x.shape, _compact_strides(x.shape))
                               if isinstance(x, torch.Tensor) and x.numel() == 0 else x) for x in objs]
    if VIEW_KERNELS[spec["kernel"]][5] == "direct":
        return isolation.outcome(lambda: direct(*objs))
    args, copies = [], []  # copies: (view, its aligned copy)
    for x in objs:
        ptr, shape, _ = _layout(x)
        if _numel(shape) == 0 or ptr % alignment == 0:
            args.append(x)
            continue
        twin = next((c for v, c in copies if _same_elements(v, x)), None)
        if twin is None:
            twin = _aligned_copy(x)
            copies.append((x, twin))
        args.append(twin)
    result = isolation.outcome(lambda: direct(*args))
    for x, twin in copies:
        _np(x)[...] = twin
    return result


def _bits(t) -> np.ndarray:
    return t.numpy().view(np.int32) if isinstance(t, torch.Tensor) else isolation.as_numpy(t).view(np.int32)


def _result_summary(value, bufs: list):
    """What a call returned, comparable across the two sets of buffers: for a tensor its type,
    layout, values and where its data lies (buffer, element), for an Array its items'."""
    if value is None:
        return None
    if isinstance(value, tvm_ffi.Array):
        return ("Array", [_result_summary(x, bufs) for x in value])
    # (numpy takes negative strides; torch.from_dlpack aborts the process on them)
    x = value if isinstance(value, (np.ndarray, torch.Tensor)) else np.from_dlpack(value)
    ptr, shape, strides = _layout(x)
    where = [(i, (ptr - b.data_ptr()) // 4) for i, b in enumerate(bufs)
             if 0 <= ptr - b.data_ptr() < 4 * b.numel()]
    return type(value).__name__, shape, strides if _numel(shape) else None, where, _bits(x).tobytes()


def _diff(bufs: list, ref_bufs: list) -> str:
    for i, (b, r) in enumerate(zip(bufs, ref_bufs)):
        bad = np.flatnonzero(_bits(b) != _bits(r))
        if bad.size:
            return (f"buffer {i} differs at {bad.size} elements, first {bad[:8].tolist()}: "
                    f"{b[bad[:8]].tolist()} instead of {r[bad[:8]].tolist()}")
    return ""


def _poison_view(objs: list, out_pos: int | None) -> None:
    """NaN the output first (an unwritten element cannot pass), unless it overlaps an input."""
    if out_pos is None:
        return
    lo, hi = _span(objs[out_pos])
    if not any(_span(x)[0] < hi and lo < _span(x)[1] for p, x in enumerate(objs) if p != out_pos):
        _np(objs[out_pos])[...] = np.nan


def _view_call(f, spec, objs: list):
    """(the function to call, its arguments) for spec's form, or ("error", e) where freeze or prepare raised."""
    if spec["form"] == "prepared":
        kind, fn = isolation.outcome(lambda: f.prepare(*objs))
        return (fn, []) if kind == "ok" else ("error", fn)
    if spec["form"] == "frozen":
        kind, fn = isolation.outcome(lambda: f.freeze({p: objs[p] for p in spec["frozen"]}))
        dyn = [x for p, x in enumerate(objs) if p not in spec["frozen"]]
        return (fn, dyn) if kind == "ok" else ("error", fn)
    return f, list(objs)


def _check_refusal(err, may: dict, reference) -> None:
    """err is a refusal the rule allows, or the reference's own error."""
    if reference[0] == "error" and type(err) is type(reference[1]) and str(err) == str(reference[1]):
        return
    assert isinstance(err, ValueError), f"{type(err).__name__}: {err} (expected: {may} or {reference})"
    m = re.match(r"tvmfast: argument #(\d+): ", str(err))
    assert m is not None, f"a ValueError that names no argument: {err} (expected: {may} or {reference})"
    p = int(m.group(1))
    assert p in may, f"argument #{p} refused, but only {may} may be (reference: {reference}): {err}"
    assert any(reason in str(err) for reason in may[p]), f"not the reason ({may[p]}): {err}"


def run_view_spec(spec) -> None:
    name = spec["kernel"]
    _, _, _, _, out_pos, _ = VIEW_KERNELS[name]
    direct, f = _view_functions()[name]
    placed, lengths = place_views(spec)
    bufs = [torch.randn(n) for n in lengths]
    assert all(b.data_ptr() % 64 == 0 for b in bufs), "torch's CPU buffers are not 64-byte aligned here"
    objs = make_views(spec, placed, bufs)
    distinct = list({id(x): x for x in objs}.values())
    before = [sys.getrefcount(x) for x in distinct]
    must, may = view_refusals(objs, f.alignment)
    if name.startswith("pair") and not must:  # it keeps its arguments: a copy must raise once the call is made
        must = {p: {"kept"} for p, x in enumerate(objs) if _numel(x.shape) and _layout(x)[0] % f.alignment}
        for p in must:
            may.setdefault(p, set()).add("kept")
    call = _view_call(f, spec, objs)
    try:
        for _ in range(spec["calls"]):
            _poison_view(objs, out_pos)
            snapshot = [b.clone() for b in bufs]
            ref_bufs = [b.clone() for b in bufs]
            reference = view_reference(spec, placed, ref_bufs, direct, f.alignment)
            if call[0] == "error":  # freeze or prepare refused an argument
                _check_refusal(call[1], may, ("ok", None))
                _views["refused"] += 1
                return
            kind, value = isolation.outcome(lambda: call[0](*call[1]))
            _views["examples"] += 1
            if kind == "error":
                if not may and reference[0] == "ok":
                    raise AssertionError(f"the call raised {type(value).__name__}: {value}; "
                                         f"on aligned memory it returns {reference[1]!r}") from value
                _check_refusal(value, may, reference)
                _views["refused"] += 1
                assert not _diff(bufs, snapshot), f"a refused call changed memory: {_diff(bufs, snapshot)}"
                return
            assert not must, f"the call must refuse {must}, but returned (buffers: {_diff(bufs, ref_bufs)})"
            assert reference[0] == "ok", f"the call returned {value!r} where the reference raises {reference[1]!r}"
            assert not _diff(bufs, ref_bufs), f"a silent wrong result: {_diff(bufs, ref_bufs)}"
            got, expected = _result_summary(value, bufs), _result_summary(reference[1], ref_bufs)
            assert got == expected, f"returned {got}, not {expected}"
            value = reference = None
    finally:
        call = value = reference = None
        if sys.exc_info()[0] is None:  # (a failure's traceback may hold the arguments)
            gc.collect(0)
            after = [sys.getrefcount(x) for x in distinct]
            if after != before:
                gc.collect()
                after = [sys.getrefcount(x) for x in distinct]
            assert after == before, f"refcounts of the arguments changed: {before} -> {after}"


def _view_example(kernel: str, shape: list, *args: dict, form: str = "dynamic") -> dict:
    """A spec written out: each argument a fresh torch view at element offset 1 unless told."""
    plain = {"source": "fresh", "of": 0, "offset": 1, "numpy": False, "flip": False, "gap": 1,
             "transpose": False, "far": False}
    return {"kernel": kernel, "shape": shape, "args": [{**plain, **a} for a in args], "form": form,
            "frozen": [0], "calls": 1}


# Patterns run before the fuzz, each reported on its own (hypothesis stops at the first failing one).
PINNED_VIEW_SPECS = [
    # k(x, b, x): the same misaligned elements in and out share one copy; so do twins
    _view_example("add", [isolation.N], {"offset": 3}, {"offset": 0}, {"source": "same"}),
    _view_example("add_one:64", [50], {"numpy": True, "flip": True, "gap": 2}, {"source": "twin"}),
    # an aligned output inside a misaligned input's span; elements far apart (over 64 KiB)
    _view_example("add_one:64", [64], {}, {"source": "inside"}),
    _view_example("add_one:64", [isolation.N], {"far": True}, {"offset": 0}),
    # the same first element and shape, other strides: x and x[::2], x and x.T
    _view_example("add_one:64", [8], {}, {"source": "same_start"}),
    _view_example("add2d", list(ADD2D_SHAPE), {}, {"offset": 0}, {"source": "same_start"}),
    # an aligned view and its misaligned reverse (the same elements, bases 60 bytes apart)
    _view_example("add_one:64", [4], {"offset": 0, "gap": 5}, {"source": "reversed"}),
    # a misaligned transposed view for a compact-buffer kernel: TVM's own stride error
    _view_example("add2d", list(ADD2D_SHAPE), {"transpose": True}, {}, {}),
    # the callee returns the copy (the caller's tensor comes back) or keeps it (refused)
    _view_example("identity:64", [9], {"numpy": True, "flip": True, "gap": 5}, form="prepared"),
    _view_example("pair:64", [9], {"offset": 0}, {"gap": 2}, form="frozen"),
    # an empty reversed numpy view: its strides reach TVM's layout check as rt_mod passes them
    _view_example("add_dyn", [0], {}, {}, {"numpy": True, "flip": True}),
]


@settings(max_examples=VIEW_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), print_blob=False)
@given(spec=view_specs())
def fuzz_views(spec):
    print(f"spec {spec}", flush=True)
    run_view_spec(spec)


def _good_view_call(name: str, f) -> None:
    _, _, ndim, arity, out_pos, _ = VIEW_KERNELS[name]
    shape = ADD2D_SHAPE if ndim == 2 else (isolation.N,)
    args = [torch.randn(shape) for _ in range(arity)]
    if out_pos is None:  # identity, pair: their arguments back
        got = f(*args)
        got = list(got) if isinstance(got, tvm_ffi.Array) else [got]
        assert all(torch.from_dlpack(y).data_ptr() == x.data_ptr() for x, y in zip(args, got)), f"{name} broke"
        return
    args[out_pos].fill_(float("nan"))
    f(*args)
    assert torch.equal(args[out_pos], args[0] + 1 if arity == 2 else args[0] + args[1]), f"{name} broke"


def _failure_text(e: BaseException) -> str:
    return "\n".join([str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}",
                      *getattr(e, "__notes__", [])])


def _case_views():
    failures = []
    for spec in PINNED_VIEW_SPECS:
        print(f"spec {spec}", flush=True)
        try:
            run_view_spec(spec)
        except Exception as e:
            failures.append(f"{_failure_text(e)}\npinned spec: {spec}")
    try:
        fuzz_views()
    except Exception as e:  # each distinct failure hypothesis found, with its falsifying spec
        failures += [_failure_text(x) for x in getattr(e, "exceptions", [e])]
    assert not failures, "\n\n".join(failures)
    print(f"{_views['examples']} calls on misaligned, aliased, negatively strided and gapped views "
          f"({_views['refused']} refused)", flush=True)
    assert _views["examples"] >= VIEW_EXAMPLES // 2
    for name, (_, f) in _view_functions().items():
        _good_view_call(name, f)


@needs_torch
def test_fuzz_misaligned_aliased_and_strided_views(view_env):
    isolation.assert_all_ok(isolation.run_isolated("test_aligned_copies", ["_case_views"], env=view_env, timeout=300))
