"""Functional torch ops from out-variant functions: ``as_torch_op(..., outputs={position: spec})``.

The positions named in ``outputs`` leave the op's schema; each call allocates them as their spec
(``tvmfast.alloc``) says, calls the function with them and returns them (one tensor, or a tuple in
ascending position order).  Checked here, against torch on fresh random inputs, with three TVM kernels
with symbolic shapes (an add, a silu_and_mul, an rmsnorm with an fp32 ``rstd``) and a probe function that
records the outputs it is given:

* eager: results, schema, fresh contiguous outputs of the right dtype/device, the shape specs (constants,
  ``dim`` arithmetic, ``dims`` slices, dtype overrides, two outputs), on the C kernel (native ops on) and
  the Python kernel (``TVMFAST_NATIVE_OP=0``, in a child process);
* torch.compile (inductor, fullgraph): a plain call of the op, no ``auto_functionalized``, no copies;
  dynamic shapes through the fake implementation;
* opcheck, register_autograd, AOTInductor (no tvmfast Python frame), vmap;
* registration errors, call-time errors (a spec that does not apply, a spec the kernel refuses),
  a Python-callable spec, re-registration with another spec.

The order matters for one check: with native ops on, a call on the C kernel must leave
``_core._native_op_last_fallback()`` at "none".  The tests whose calls all take the C path come first; those
that make calls leave it (views, tensors that require grad, vmap's slices, a spec that does not apply) come
later, and the last test checks "none" after a C-path call that follows such a call.

(Out-variant and returning ops: test_torch_ops.py, test_torch_ops_native.py.)
"""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import uuid
import warnings

import pytest
import tvm_ffi

torch = pytest.importorskip("torch")

import tvmfast  # noqa: E402
from support import isolation  # noqa: E402
from support import tvm_kernels as kernels  # noqa: E402
from support.helpers import needs_tvm  # noqa: E402
from support.torch_ops import child_env_with_support, tvmfast_frames  # noqa: E402
from tvmfast import _core, alloc  # noqa: E402

pytestmark = needs_tvm

MODULE = "test_torch_ops_functional"
NS = "tvmfast_test_functional"
LIBS_ENV = "TVMFAST_TEST_FUNCTIONAL_LIBS"
_IDS = itertools.count()
# Op names are unique per run: inductor's on-disk caches key a compiled graph by the op names it calls, not by
# the ops' output specs, so a name that met another spec in an earlier run could reach its compiled code.
_RUN = uuid.uuid4().hex[:8]
EPS = 1e-6


def fresh_name(stem: str) -> str:
    """A new op name: an op's definition lives as long as the process."""
    return f"{NS}::{stem}{next(_IDS)}_{_RUN}"


# ---------------------------------------------------------------------------
# Kernels (symbolic shapes) and their torch references
# ---------------------------------------------------------------------------
# The "add" kernel (kernels.build_add_dynamic) writing a float64 output (a kernel "rebuilt" with another
# output dtype).
ADD_F64_SRC = '''
@T.prim_func
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({"global_symbol": "main", "tir.noalias": True})
    n = T.int64()
    A = T.match_buffer(a, (n,), "float32")
    B = T.match_buffer(b, (n,), "float32")
    C = T.match_buffer(c, (n,), "float64")
    for i in range(n):
        C[i] = T.Cast("float64", A[i] + B[i])
'''

# out[i, j] = silu(x[i, j]) * x[i, j + k], x of shape (m, 2k), out (m, k).
SILU_AND_MUL_SRC = '''
@T.prim_func
def main(x: T.handle, o: T.handle):
    T.func_attr({"global_symbol": "main", "tir.noalias": True})
    m = T.int64()
    k = T.int64()
    X = T.match_buffer(x, (m, k * 2), "float32")
    O = T.match_buffer(o, (m, k), "float32")
    for i, j in T.grid(m, k):
        O[i, j] = X[i, j] / (T.float32(1) + T.exp(T.float32(0) - X[i, j])) * X[i, j + k]
'''

# y = x * rstd * w (fp16), rstd = 1 / sqrt(mean(x^2) + eps) per row (fp32), accumulated in fp32.
RMSNORM_SRC = '''
@T.prim_func
def main(x: T.handle, w: T.handle, y: T.handle, r: T.handle):
    T.func_attr({"global_symbol": "main", "tir.noalias": True})
    m = T.int64()
    n = T.int64()
    X = T.match_buffer(x, (m, n), "float16")
    W = T.match_buffer(w, (n,), "float16")
    Y = T.match_buffer(y, (m, n), "float16")
    R = T.match_buffer(r, (m,), "float32")
    acc = T.alloc_buffer((1,), "float32")
    for i in range(m):
        acc[0] = T.float32(0)
        for j in range(n):
            acc[0] = acc[0] + T.Cast("float32", X[i, j]) * T.Cast("float32", X[i, j])
        R[i] = T.float32(1) / T.sqrt(acc[0] / T.Cast("float32", n) + T.float32(1e-6))
        for j in range(n):
            Y[i, j] = T.Cast("float16", T.Cast("float32", X[i, j]) * R[i] * T.Cast("float32", W[j]))
'''

# name -> (its runtime module's builder, argument count).  "add": C = A + B of n float32, the support
# package's symbolic-length add.
KERNELS = {"add": (kernels.build_add_dynamic, 3),
           "add_f64": (lambda: kernels.build_tvmscript(ADD_F64_SRC), 3),
           "silu_and_mul": (lambda: kernels.build_tvmscript(SILU_AND_MUL_SRC), 2),
           "rmsnorm": (lambda: kernels.build_tvmscript(RMSNORM_SRC), 4)}
_BOUND: dict = {}


def bound(name: str):
    """The kernel ``name`` bound: loaded from the library the test process exported ($LIBS_ENV, in a
    child), else built here."""
    if name not in _BOUND:
        build, num_args = KERNELS[name]
        libs = json.loads(os.environ.get(LIBS_ENV) or "{}")
        _BOUND[name] = tvmfast.bind(libs.get(name) or build(), num_args=num_args)
    return _BOUND[name]


def silu_and_mul_reference(x):
    k = x.shape[-1] // 2
    return torch.nn.functional.silu(x[..., :k]) * x[..., k:]


def rmsnorm_reference(x, w):
    rstd = torch.rsqrt(x.float().pow(2).mean(-1) + EPS)
    return (x.float() * rstd[..., None] * w.float()).to(x.dtype), rstd


def assert_rmsnorm(got, x, w):
    y_ref, rstd_ref = rmsnorm_reference(x, w)
    assert isinstance(got, tuple) and len(got) == 2, got
    torch.testing.assert_close(got[0], y_ref, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(got[1], rstd_ref, rtol=1e-5, atol=1e-5)


SILU_AND_MUL_OUT = alloc.like(0, shape=[alloc.dims(0, stop=-1), alloc.dim(0, -1) // 2])
RMSNORM_OUTPUTS = {2: alloc.like(0), 3: alloc.like(0, dtype=torch.float32, shape=[alloc.dims(0, stop=-1)])}


def randn(*shape, gen=None, dtype=torch.float32):
    return torch.randn(*shape, generator=gen).to(dtype)


def add_op(name=None):
    a = torch.empty(8)
    return bound("add").as_torch_op(name or fresh_name("add"), example_args=(a, a, a), outputs={2: alloc.like(0)})


def silu_and_mul_op(name=None, example=True):
    example_args = (torch.empty(4, 6), torch.empty(4, 3)) if example else None
    return bound("silu_and_mul").as_torch_op(name or fresh_name("silu_and_mul"), example_args=example_args,
                                             outputs={1: SILU_AND_MUL_OUT})


def rmsnorm_op(name=None, outputs=None):
    x = torch.empty(3, 5, dtype=torch.float16)
    return bound("rmsnorm").as_torch_op(
        name or fresh_name("rmsnorm"), example_args=(x, x[0], x, torch.empty(3)),
        outputs=RMSNORM_OUTPUTS if outputs is None else outputs)


# ---------------------------------------------------------------------------
# Which kernel a call took
# ---------------------------------------------------------------------------
def _native_expected() -> bool:
    return _core._native_op_state().startswith("on")


def run_checked(call):
    """call() (an op call), checked to take the path this process should: the C kernel with native ops on
    (no tvmfast Python frame; the last fallback is "none"), the op's Python kernel under TVMFAST_NATIVE_OP=0."""
    got = []
    frames = tvmfast_frames(lambda: got.append(call()))
    if _native_expected():
        assert frames == [], f"the call entered tvmfast Python frames: {frames}"
        assert _core._native_op_last_fallback() == "none", _core._native_op_last_fallback()
    else:
        assert any(f.startswith("<tvmfast op") for f in frames), frames
    return got[0]


def assert_fresh_output(out, shape, dtype, inputs):
    """A new contiguous tensor of ``shape`` and ``dtype`` on the inputs' device, sharing no memory with them."""
    assert isinstance(out, torch.Tensor), type(out)
    assert tuple(out.shape) == tuple(shape), (tuple(out.shape), shape)
    assert out.dtype == dtype, out.dtype
    assert out.device == inputs[0].device, out.device
    assert out.is_contiguous(), out.stride()
    assert out._base is None and not out.requires_grad
    for t in inputs:
        if out.numel() and t.numel():
            assert out.untyped_storage().data_ptr() != t.untyped_storage().data_ptr(), "the output aliases an input"


def assert_schema(op, n_inputs: int, n_outputs: int):
    """The outputs left the schema: n_inputs read-only tensor arguments, n_outputs returned tensors."""
    schema = op._schema
    assert len(schema.arguments) == n_inputs, str(schema)
    for arg in schema.arguments:
        assert str(arg.type) == "Tensor" and (arg.alias_info is None or not arg.alias_info.is_write), str(schema)
    assert len(schema.returns) == n_outputs, str(schema)
    for ret in schema.returns:
        assert str(ret.type) == "Tensor" and ret.alias_info is None, str(schema)
    assert str(schema).endswith("-> Tensor" if n_outputs == 1 else "-> (" + ", ".join(["Tensor"] * n_outputs) + ")")


# ---------------------------------------------------------------------------
# Cases run in this process (native ops on) and in a child under TVMFAST_NATIVE_OP=0
# ---------------------------------------------------------------------------
def _case_add_eager(gen=None):
    op = add_op()
    assert_schema(op, 2, 1)
    for n in (128, 5, 1000):
        a, b = randn(n, gen=gen), randn(n, gen=gen)
        a0, b0 = a.clone(), b.clone()
        out = run_checked(lambda: op(a, b))  # noqa: B023
        assert torch.equal(out, a0 + b0)
        assert_fresh_output(out, (n,), torch.float32, (a, b))
        assert torch.equal(a, a0) and torch.equal(b, b0) and a._version == 0 and b._version == 0
    # Each call allocates: two results are two tensors.
    first, second = op(a, b), op(a, b)
    assert first.data_ptr() != second.data_ptr()
    first.zero_()
    assert torch.equal(second, a + b)


def _case_silu_and_mul_eager(gen=None):
    ops = [silu_and_mul_op(), silu_and_mul_op(example=False)]  # without example_args: num_args=2 tensors
    for op in ops:
        assert_schema(op, 1, 1)
        for m, k in ((5, 8), (1, 1), (33, 17), (0, 4)):
            x = randn(m, 2 * k, gen=gen)
            out = run_checked(lambda: op(x))  # noqa: B023
            torch.testing.assert_close(out, silu_and_mul_reference(x), rtol=1e-5, atol=1e-6)
            assert_fresh_output(out, (m, k), torch.float32, (x,))


def _case_rmsnorm_eager(gen=None):
    # The outputs come back in position order, whatever the order of the dict.
    reversed_outputs = {3: RMSNORM_OUTPUTS[3], 2: RMSNORM_OUTPUTS[2]}
    for op in (rmsnorm_op(), rmsnorm_op(outputs=reversed_outputs)):
        assert_schema(op, 2, 2)
        for m, n in ((4, 64), (1, 3), (17, 256)):
            x, w = randn(m, n, gen=gen, dtype=torch.float16), randn(n, gen=gen, dtype=torch.float16)
            got = run_checked(lambda: op(x, w))  # noqa: B023
            assert_rmsnorm(got, x, w)
            y, rstd = got
            assert_fresh_output(y, (m, n), torch.float16, (x, w))
            assert_fresh_output(rstd, (m,), torch.float32, (x, w))  # the dtype override
            assert y.untyped_storage().data_ptr() != rstd.untyped_storage().data_ptr()


def _case_outputs_beside_mutated_arguments(gen=None):
    """An op that writes a tensor it is given (mutates_args) and allocates another (outputs)."""
    op = bound("rmsnorm").as_torch_op(fresh_name("rmsnorm_inplace_rstd"), mutates_args=(3,),
                                      outputs={2: alloc.like(0)})
    args = op._schema.arguments
    assert len(args) == 3 and args[2].alias_info is not None and args[2].alias_info.is_write, str(op._schema)
    assert str(op._schema).endswith("-> Tensor")
    x, w = randn(6, 32, gen=gen, dtype=torch.float16), randn(32, gen=gen, dtype=torch.float16)
    rstd = torch.full((6,), float("nan"))
    y = run_checked(lambda: op(x, w, rstd))
    assert_rmsnorm((y, rstd), x, w)
    assert rstd._version == 1 and x._version == 0
    assert_fresh_output(y, (6, 32), torch.float16, (x, w, rstd))


def _probe():
    """A function (x, y, out) that records the output it is given and fills it with 0, 1, 2, ..."""
    seen = []

    def probe(x, y, out):
        t = torch.from_dlpack(out)
        seen.append((tuple(t.shape), t.dtype, t.stride(), t.data_ptr()))
        t.copy_(torch.arange(t.numel()).reshape(t.shape).to(t.dtype))

    return tvmfast.bind(tvm_ffi.convert(probe), num_args=3), seen


def _probe_at(pos: int):
    """Like _probe, with the output at argument position pos of three, the inputs x, y around it in order."""
    seen = []

    def probe(*args):
        t = torch.from_dlpack(args[pos])
        seen.append((tuple(t.shape), t.dtype, t.stride(), t.data_ptr()))
        t.copy_(torch.arange(t.numel()).reshape(t.shape).to(t.dtype))

    return tvmfast.bind(tvm_ffi.convert(probe), num_args=3), seen


# (shape spec, expected shape) for x of shape (3, 4, 10) and y of shape (6,).
SHAPE_CASES = [
    ([7], (7,)),
    ([0], (0,)),
    ([], ()),
    ([2, alloc.dim(0, 0), 5], (2, 3, 5)),
    ([alloc.dim(0, 0) + 2], (5,)),
    ([alloc.dim(0, -1) - 3], (7,)),
    ([alloc.dim(0, 1) * 3], (12,)),
    ([alloc.dim(0, -1) // 3], (3,)),
    ([(alloc.dim(0, -1) + 2) // 4 * 3 - 1], (8,)),  # left to right: ((10 + 2) // 4) * 3 - 1
    ([alloc.dim(0, 0) - 3], (0,)),
    ([alloc.dim(0, 0) * -1 + 10], (7,)),  # a negative constant
    ([alloc.dim(0, 0) - 5 + 5], (3,)),  # a negative value on the way
    ([alloc.dim(1, 0), alloc.dim(0, -2)], (6, 4)),
    ([alloc.dims(0)], (3, 4, 10)),
    ([alloc.dims(0, 1)], (4, 10)),
    ([alloc.dims(0, -2)], (4, 10)),
    ([alloc.dims(0, stop=-1), 2], (3, 4, 2)),
    ([alloc.dims(0, 1, 2)], (4,)),
    ([alloc.dims(0, stop=0)], ()),
    ([alloc.dims(0, 5)], ()),
    ([alloc.dims(0, 2, 1)], ()),
    ([alloc.dims(0, -100, 100)], (3, 4, 10)),
    ([alloc.dims(1), alloc.dim(0, 0), alloc.dims(0, stop=1)], (6, 3, 3)),
]


def _case_shape_specs(gen=None):
    x, y = randn(3, 4, 10, gen=gen), randn(6, gen=gen, dtype=torch.float64)
    f, seen = _probe()
    cases = [(alloc.like(0, shape=shape), expected, torch.float32) for shape, expected in SHAPE_CASES]
    cases += [(alloc.like(1), (6,), torch.float64),
              (alloc.like(0, dtype=torch.float16), (3, 4, 10), torch.float16),
              (alloc.like(0, dtype=torch.int32, shape=[alloc.dims(0, stop=-1)]), (3, 4), torch.int32),
              (alloc.like(1, dtype=torch.bfloat16, shape=[alloc.dim(0, -1) * 2]), (20,), torch.bfloat16)]
    for spec, expected, dtype in cases:
        op = f.as_torch_op(fresh_name("probe"), example_args=(x, y, x), outputs={2: spec})
        seen.clear()
        out = run_checked(lambda: op(x, y))  # noqa: B023
        assert_fresh_output(out, expected, dtype, (x, y))
        assert len(seen) == 1 and seen[0][:3] == (expected, dtype, out.stride()), (spec, seen)
        assert seen[0][3] == out.data_ptr(), f"{spec!r}: the op returned another tensor than the one written"
        assert torch.equal(out, torch.arange(out.numel()).reshape(expected).to(dtype)), spec
        # The fake implementation (meta tensors) evaluates the same spec.
        meta = op(x.to("meta"), y.to("meta"))
        assert meta.device.type == "meta" and tuple(meta.shape) == expected and meta.dtype == dtype, (spec, meta)
    # Positions are the function's: an output first, or between the inputs.
    for order, pos in (("out_x_y", 0), ("x_out_y", 1)):
        g, seen = _probe_at(pos)
        x_pos = 1 if pos == 0 else 0  # y is argument #2 either way
        spec = alloc.like(2, shape=[alloc.dim(x_pos, 0), alloc.dims(2)])
        example = [x, y]
        example.insert(pos, x)
        op = g.as_torch_op(fresh_name(f"probe_{order}"), example_args=tuple(example), outputs={pos: spec})
        assert len(op._schema.arguments) == 2, str(op._schema)
        out = run_checked(lambda: op(x, y))  # noqa: B023
        assert_fresh_output(out, (3, 6), torch.float64, (x, y))
        assert seen[0][3] == out.data_ptr() and torch.equal(out, torch.arange(18).reshape(3, 6).double())
        assert tuple(op(x.to("meta"), y.to("meta")).shape) == (3, 6)
    # like(k) of a non-contiguous tensor: a contiguous output of its shape.
    strided = torch.empty_strided((4, 6), (1, 4))
    strided.copy_(randn(4, 6, gen=gen))
    op = f.as_torch_op(fresh_name("probe"), example_args=(strided, y, strided), outputs={2: alloc.like(0)})
    out = run_checked(lambda: op(strided, y))
    assert_fresh_output(out, (4, 6), torch.float32, (strided, y))
    assert out.stride() == (6, 1)


def _case_kernel_refuses_the_spec(gen=None):
    """A spec the kernel refuses (a wrong output shape or dtype): the kernel's own error, as the bound function
    raises it for the same output; nothing written; the right spec works after it."""
    silu = bound("silu_and_mul")
    x = randn(5, 8, gen=gen)
    x0 = x.clone()
    for spec, given in [(alloc.like(0), torch.empty(5, 8)),  # (m, 2k) for (m, k)
                        (alloc.like(0, shape=[alloc.dim(0, 0), 1]), torch.empty(5, 1)),  # too small
                        (alloc.like(0, shape=[alloc.dim(0, 0) + 1, alloc.dim(0, 1) // 2]), torch.empty(6, 4)),
                        (alloc.like(0, dtype=torch.float64, shape=[alloc.dim(0, 0), alloc.dim(0, 1) // 2]),
                         torch.empty(5, 4, dtype=torch.float64))]:
        op = silu.as_torch_op(fresh_name("silu_bad_spec"), example_args=(x, x), outputs={1: spec})
        with pytest.raises(Exception) as direct:
            silu(x, given)
        with pytest.raises(Exception) as via_op:
            op(x)
        assert type(via_op.value) is type(direct.value), (spec, via_op.value, direct.value)
        assert str(via_op.value) == str(direct.value), spec
        assert torch.equal(x, x0)
    # The right spec still works after the refused calls.
    op = silu_and_mul_op()
    torch.testing.assert_close(run_checked(lambda: op(x)), silu_and_mul_reference(x), rtol=1e-5, atol=1e-6)


def _case_negative_value_before_floordiv(gen=None):
    """dim arithmetic is Python's, left to right: (10 - 13) // 2 + 5 == 3 (floor division of a negative value
    on the way), on the C kernel like any other declarative spec."""
    f, seen = _probe()
    x, y = randn(3, 4, 10, gen=gen), randn(6, gen=gen)
    for shape, expected in [([(alloc.dim(0, -1) - 13) // 2 + 5], (3,)),
                            ([(alloc.dim(0, 0) - 4) // 3 * -2], (2,))]:
        op = f.as_torch_op(fresh_name("probe_floor"), example_args=(x, y, x), outputs={2: alloc.like(0, shape=shape)})
        out = run_checked(lambda: op(x, y))  # noqa: B023
        assert_fresh_output(out, expected, torch.float32, (x, y))
        assert tuple(op(x.to("meta"), y.to("meta")).shape) == expected


def _case_spec_does_not_apply(gen=None):
    """A spec that does not apply to the inputs: a clear ValueError from the op, nothing called; then an
    ordinary call of the same op (the C kernel where native ops are on)."""
    f, seen = _probe()
    x2 = randn(4, 6, gen=gen)
    x1 = randn(8, gen=gen)
    name = fresh_name("probe_out_of_range")
    op = f.as_torch_op(name, example_args=(x2, x2, x2),
                       outputs={2: alloc.like(0, shape=[alloc.dim(0, 0), alloc.dim(0, 1) // 2])})
    with pytest.raises(ValueError) as info:
        op(x1, x1)  # dim(0, 1) of a 1-D tensor
    msg = str(info.value)
    assert name in msg and "dim(0, 1)" in msg and re.search(r"argument #?0|#0", msg), msg
    assert seen == []
    # A negative size.
    name = fresh_name("probe_negative")
    op = f.as_torch_op(name, example_args=(randn(9, 2, gen=gen), x2, x2),
                       outputs={2: alloc.like(0, shape=[alloc.dim(0, 0) - 5])})
    with pytest.raises(ValueError) as info:
        op(x2, x2)  # 4 - 5
    msg = str(info.value)
    assert name in msg and "negative" in msg, msg
    assert seen == []
    # The same op on inputs its spec fits: an ordinary call (on the C kernel where native ops are on).
    out = run_checked(lambda: op(randn(9, 2, gen=gen), x2))
    assert out.shape == (4,) and len(seen) == 1


def _reregister(register, overriding: list):
    """register(), which registers an op name again; torch's "Overriding a previously registered kernel"
    warnings go to ``overriding`` (there should be none: the old kernels are replaced, not overridden)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        op = register()
    overriding += [str(w.message) for w in caught if "previously registered kernel" in str(w.message)]
    return op


def _case_reregistration(gen=None):
    """The same name registered again: with the same specs (a rebuilt kernel) it is the same op, whose
    kernel is replaced; with other specs it is another op (another overload of the name), whose kernel and
    fake implementation follow the new specs while the first op keeps its own; another schema raises."""
    name = fresh_name("add_rebuilt")
    a, b = randn(64, gen=gen), randn(64, gen=gen)
    overriding = []
    op = add_op(name)
    out = run_checked(lambda: op(a, b))
    assert out.dtype == torch.float32 and torch.equal(out, a + b)
    assert _reregister(lambda: add_op(name), overriding) is op  # same specs: the same op, its kernel replaced
    op2 = _reregister(lambda: bound("add_f64").as_torch_op(name, example_args=(a, b, a),
                                                           outputs={2: alloc.like(0, dtype=torch.float64)}),
                      overriding)
    assert op2 is not op and op2.name().startswith(name + ".")
    out = run_checked(lambda: op2(a, b))
    assert out.dtype == torch.float64 and torch.equal(out, (a + b).double())
    meta = op2(a.to("meta"), b.to("meta"))
    assert meta.dtype == torch.float64 and meta.shape == (64,)
    out = run_checked(lambda: op(a, b))  # the first op keeps its specs
    assert out.dtype == torch.float32 and torch.equal(out, a + b)
    # A Python-callable spec: another op again.
    op3 = _reregister(lambda: bound("add_f64").as_torch_op(
        name, example_args=(a, b, a), outputs={2: lambda x, y: torch.empty(x.shape, dtype=torch.float64)}),
        overriding)
    assert op3 is not op and op3 is not op2 and torch.equal(op3(a, b), (a + b).double())
    with pytest.raises(ValueError, match="already registered with the schema"):
        bound("add").as_torch_op(name, mutates_args=(2,))
    with pytest.raises(ValueError, match="already registered with the schema"):
        bound("add").as_torch_op(name, outputs={1: alloc.like(0)})
    assert not overriding, overriding[0]


CASES = ["_case_add_eager", "_case_silu_and_mul_eager", "_case_rmsnorm_eager",
         "_case_outputs_beside_mutated_arguments", "_case_shape_specs", "_case_reregistration",
         "_case_kernel_refuses_the_spec", "_case_negative_value_before_floordiv", "_case_spec_does_not_apply"]


def child_main(names: list[str]) -> None:
    isolation.run_cases(sys.modules[__name__], names)


@pytest.fixture(scope="module")
def child_env(tmp_path_factory):
    """The environment of a child: the kernels exported as libraries (loading is cheaper than building)."""
    d = tmp_path_factory.mktemp("functional_op_libs")
    libs = {}
    for name, (build, _) in KERNELS.items():
        libs[name] = str(d / f"{name}.so")
        build().export_library(libs[name])
    env = dict(os.environ)
    env.pop("TVMFAST_NATIVE_OP", None)
    env[LIBS_ENV] = json.dumps(libs)
    return env


# ---------------------------------------------------------------------------
# 1-2, 8, 10. Eager: C kernel here, Python kernel in a child (re-registration, a spec the kernel refuses)
# ---------------------------------------------------------------------------
def test_add_eager(gen):
    _case_add_eager(gen)


def test_silu_and_mul_eager(gen):
    _case_silu_and_mul_eager(gen)


def test_rmsnorm_eager_two_outputs_and_dtype_override(gen):
    _case_rmsnorm_eager(gen)


def test_outputs_beside_mutated_arguments(gen):
    _case_outputs_beside_mutated_arguments(gen)


def test_shape_specs(gen):
    _case_shape_specs(gen)


def test_reregistration_takes_the_new_spec(gen):
    _case_reregistration(gen)


def test_a_spec_the_kernel_refuses_raises_the_kernels_error(gen):
    _case_kernel_refuses_the_spec(gen)


def test_native_ops_are_on_here():
    """The cases above ran on the C kernel (they check it where native ops are on): say so where they are not."""
    if not _native_expected():
        pytest.skip(f"native torch ops are off here: {_core._native_op_state()}")


def test_same_results_with_native_ops_off(child_env):
    """Every eager case again in a child process under TVMFAST_NATIVE_OP=0 (the op's Python kernel)."""
    env = dict(child_env, TVMFAST_NATIVE_OP="0")
    script = "from tvmfast import _core; print(_core._native_op_state())"
    state = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert state.stdout.strip() == "off (TVMFAST_NATIVE_OP=0)", state.stdout + state.stderr
    isolation.assert_all_ok(isolation.run_isolated(MODULE, CASES, env=env, timeout=180))


# ---------------------------------------------------------------------------
# 3. torch.compile: a plain functional call, no auto_functionalized, no copies; dynamic shapes
# ---------------------------------------------------------------------------
class GraphRecorder:
    """A torch.compile backend (through aot_autograd) that keeps the forward graphs it is given."""

    def __init__(self):
        from torch._dynamo.backends.common import aot_autograd

        self.graphs = []
        self.backend = aot_autograd(fw_compiler=self._record)

    def _record(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def _model(silu, rms, add):
    def step(x, h, w):
        y, rstd = rms(h * 2, w)
        return silu(x) * 2, y + 1, rstd * 3, add(x[0], x[1])
    return step


def _model_reference(x, h, w):
    y, rstd = rmsnorm_reference(h * 2, w)
    return silu_and_mul_reference(x) * 2, y + 1, rstd * 3, x[0] + x[1]


def _assert_model(got, x, h, w):
    want = _model_reference(x, h, w)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[3], want[3])


def _model_inputs(m, n, gen):
    return randn(m, 2 * n, gen=gen), randn(m, n, gen=gen, dtype=torch.float16), randn(n, gen=gen,
                                                                                     dtype=torch.float16)


def test_inductor_calls_the_op_plainly(gen):
    from torch._inductor.utils import run_and_get_code

    ops = silu, rms, add = silu_and_mul_op(), rmsnorm_op(), add_op()
    torch._dynamo.reset()
    compiled = torch.compile(_model(*ops), backend="inductor", fullgraph=True)
    x, h, w = _model_inputs(4, 16, gen)
    got, codes = run_and_get_code(compiled, x, h, w)
    _assert_model(got, x, h, w)
    code = "\n".join(codes)
    assert "auto_functionalized" not in code
    for op in ops:
        call = f"torch.ops.{op.name().replace('::', '.')}("
        assert code.count(call) == 1, f"{call} not called once in the generated code:\n{code}"
    for copy in ("copy_(", "aten.copy", "clone"):
        assert copy not in code, f"{copy} in the generated code:\n{code}"
    x, h, w = _model_inputs(4, 16, gen)  # fresh inputs, same graph
    _assert_model(compiled(x, h, w), x, h, w)
    # The compiled code calls the op's C kernel: no tvmfast Python frame (inputs that are not views).
    if _native_expected():
        step = torch.compile(lambda x, h, w: (silu(x) * 2, rms(h * 2, w)[1] + 1), backend="inductor", fullgraph=True)
        step(x, h, w)
        x, h, w = _model_inputs(4, 16, gen)
        got = []
        assert tvmfast_frames(lambda: got.append(step(x, h, w))) == []
        torch.testing.assert_close(got[0][0], silu_and_mul_reference(x) * 2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[0][1], rmsnorm_reference(h * 2, w)[1] + 1, rtol=1e-5, atol=1e-5)


def test_the_traced_graph_holds_plain_calls_and_symbolic_shapes(gen):
    ops = silu_and_mul_op(), rmsnorm_op(), add_op()
    names = {op._name for op in ops}
    torch._dynamo.reset()
    recorder = GraphRecorder()
    compiled = torch.compile(_model(*ops), backend=recorder.backend, fullgraph=True, dynamic=True)
    for m, n in ((4, 16), (7, 10), (2, 33)):
        x, h, w = _model_inputs(m, n, gen)
        _assert_model(compiled(x, h, w), x, h, w)
    assert len(recorder.graphs) == 1, f"{len(recorder.graphs)} graphs for dynamic=True"
    graph = recorder.graphs[0]
    assert "auto_functionalized" not in graph.code, graph.code
    calls = [n for n in graph.graph.nodes if n.op == "call_function"]
    ours = [n for n in calls if getattr(n.target, "_name", None) in names]
    assert sorted(n.target._name for n in ours) == sorted(names), graph.code
    for node in calls:
        name = str(getattr(node.target, "__name__", node.target))
        assert "auto_functionalized" not in name and "copy" not in name and "clone" not in name, graph.code
    # The fake implementation evaluated the specs on symbolic sizes.
    silu_out = next(n for n in ours if n.target._name == ops[0]._name).meta["val"]
    assert isinstance(silu_out.shape[0], torch.SymInt) and isinstance(silu_out.shape[1], torch.SymInt), silu_out
    assert "//" in str(silu_out.shape[1]) or "floor" in str(silu_out.shape[1]).lower(), silu_out.shape
    y, rstd = next(n for n in ours if n.target._name == ops[1]._name).meta["val"]
    assert rstd.dtype == torch.float32 and y.dtype == torch.float16 and rstd.shape[0] == y.shape[0]


def test_inductor_dynamic_shapes(gen):
    ops = silu_and_mul_op(), rmsnorm_op(), add_op()
    torch._dynamo.reset()
    compiled = torch.compile(_model(*ops), backend="inductor", fullgraph=True, dynamic=True)
    for m, n in ((4, 16), (9, 6), (3, 40)):
        x, h, w = _model_inputs(m, n, gen)
        _assert_model(compiled(x, h, w), x, h, w)
    # mark_dynamic on a default compile
    torch._dynamo.reset()
    silu = ops[0]
    compiled = torch.compile(lambda x: silu(x) + 1, backend="inductor", fullgraph=True)
    for m in (5, 11, 2):
        x = randn(m, 12, gen=gen)
        torch._dynamo.mark_dynamic(x, 0)
        torch.testing.assert_close(compiled(x), silu_and_mul_reference(x) + 1, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# 10. Re-registration with another spec, then compiled
# ---------------------------------------------------------------------------
def test_reregistration_reaches_compiled_code(gen):
    """Code compiled for an op is never run with other outputs: the op registered again under the same name
    with other specs is another op (inductor's FX graph cache keys a graph by its ops' names and schemas, not
    by the outputs their fake implementations give, so reusing the first op's code for other outputs would
    read and write out of bounds); a graph of the new op compiles for its float64 output, and the first op's
    graph still gives float32."""
    name = fresh_name("add_recompiled")
    op = add_op(name)
    a, b = randn(16, gen=gen), randn(16, gen=gen)
    torch._dynamo.reset()
    assert torch.compile(lambda x, y: op(x, y) + 1, backend="inductor", fullgraph=True)(a, b).dtype == torch.float32
    op64 = bound("add_f64").as_torch_op(name, example_args=(a, b, a), outputs={2: alloc.like(0, dtype=torch.float64)})
    torch._dynamo.reset()
    got = torch.compile(lambda x, y: op64(x, y) + 1, backend="inductor", fullgraph=True)(a, b)
    assert got.dtype == torch.float64 and torch.equal(got, (a + b).double() + 1)
    again = torch.compile(lambda x, y: op(x, y) + 1, backend="inductor", fullgraph=True)(a, b)
    assert again.dtype == torch.float32 and torch.equal(again, a + b + 1)


# ---------------------------------------------------------------------------
# 4. opcheck
# ---------------------------------------------------------------------------
def test_opcheck(gen):
    callable_spec = bound("add").as_torch_op(fresh_name("add_callable"), outputs={2: lambda a, b: torch.empty_like(a)})
    for op, args in [(add_op(), (randn(32, gen=gen), randn(32, gen=gen))),
                     (silu_and_mul_op(), (randn(6, 20, gen=gen),)),
                     (rmsnorm_op(), (randn(5, 24, gen=gen, dtype=torch.float16),
                                     randn(24, gen=gen, dtype=torch.float16))),
                     (callable_spec, (randn(32, gen=gen), randn(32, gen=gen)))]:
        result = torch.library.opcheck(op, args)
        assert set(result.values()) == {"SUCCESS"}, (op, result)


# ---------------------------------------------------------------------------
# 5. register_autograd on a functional op
# ---------------------------------------------------------------------------
def test_register_autograd_gives_torchs_gradients(gen):
    add = add_op()
    torch.library.register_autograd(add._name, lambda ctx, grad: (grad, grad))
    silu = silu_and_mul_op()

    def silu_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    def silu_backward(ctx, grad):
        (x,) = ctx.saved_tensors
        k = x.shape[-1] // 2
        a, b = x[..., :k], x[..., k:]
        s = torch.sigmoid(a)
        return torch.cat([grad * b * s * (1 + a * (1 - s)), grad * a * s], dim=-1)

    torch.library.register_autograd(silu._name, silu_backward, setup_context=silu_setup)
    for run in ("eager", "aot_eager"):
        torch._dynamo.reset()
        def f_add(a, b):
            return (add(a, b) * 3).sum()

        def f_silu(x):
            return (silu(x) ** 2).sum()

        if run != "eager":
            f_add = torch.compile(f_add, backend=run, fullgraph=True)
            f_silu = torch.compile(f_silu, backend=run, fullgraph=True)
        a, b = randn(40, gen=gen).requires_grad_(), randn(40, gen=gen).requires_grad_()
        f_add(a, b).backward()
        torch.testing.assert_close(a.grad, torch.full((40,), 3.0))
        torch.testing.assert_close(b.grad, torch.full((40,), 3.0))
        x0 = randn(5, 12, gen=gen)
        x, xr = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        f_silu(x).backward()
        (silu_and_mul_reference(xr) ** 2).sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-4, atol=1e-5)
    result = torch.library.opcheck(silu, (randn(3, 8, gen=gen).requires_grad_(),))
    assert set(result.values()) == {"SUCCESS"}, result


# ---------------------------------------------------------------------------
# 6. AOTInductor: a package calling the op runs it without tvmfast Python frames
# ---------------------------------------------------------------------------
AOTI_RUN = '''
import sys
import torch
import tvmfast
from support.torch_ops import tvmfast_frames
from tvmfast import alloc

folder = sys.argv[1]
spec = alloc.like(0, shape=[alloc.dims(0, stop=-1), alloc.dim(0, -1) // 2])
op = tvmfast.bind(folder + "/silu_and_mul.so", num_args=2).as_torch_op("{name}", outputs={{1: spec}})
data = torch.load(folder + "/data.pt")
model = torch._inductor.aoti_load_package(folder + "/model.pt2")
model(data["x"][0])
frames = []
verdicts = []
for x, expected in zip(data["x"], data["expected"]):
    got = []
    frames += tvmfast_frames(lambda: got.append(model(x)))
    got = got[0]
    verdicts.append(got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-5, atol=1e-5))
verdict = "right" if all(verdicts) else "WRONG"
print("RESULT", verdict, len(frames), frames[:3], tvmfast._core._native_op_last_fallback())
'''


@pytest.mark.slow
def test_aoti_package_runs_without_tvmfast_python_frames(tmp_path, gen):
    """An AOTInductor package (dynamic row count) calling a functional op: a fresh process registers the op
    again and runs the model for several sizes with no tvmfast Python frame, on the C kernel."""
    if not _native_expected():
        pytest.skip(f"native torch ops are off here: {_core._native_op_state()}")
    name = fresh_name("silu_aoti")
    kernels.build_tvmscript(SILU_AND_MUL_SRC).export_library(str(tmp_path / "silu_and_mul.so"))
    op = tvmfast.bind(str(tmp_path / "silu_and_mul.so"), num_args=2).as_torch_op(
        name, outputs={1: SILU_AND_MUL_OUT})

    class Model(torch.nn.Module):
        def forward(self, x):
            return op(x * 2) + 1

    model = Model()
    x = randn(6, 16, gen=gen)
    torch.testing.assert_close(model(x), silu_and_mul_reference(x * 2) + 1, rtol=1e-5, atol=1e-5)
    exported = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("m", min=1)}})
    torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp_path / "model.pt2"))
    xs = [randn(m, 16, gen=gen) for m in (6, 3, 25)]
    torch.save({"x": xs, "expected": [silu_and_mul_reference(x * 2) + 1 for x in xs]}, tmp_path / "data.pt")
    script = tmp_path / "run.py"
    script.write_text(AOTI_RUN.format(name=name))
    env = child_env_with_support()
    env.pop("TVMFAST_NATIVE_OP", None)
    res = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert res.returncode == 0 and line is not None, res.stdout[-2000:] + res.stderr[-3000:]
    assert line.split()[1:3] == ["right", "0"], line
    assert line.endswith(" none"), line


# ---------------------------------------------------------------------------
# 11. vmap
# ---------------------------------------------------------------------------
def test_vmap_matches_a_loop(gen):
    add, silu, rms = add_op(), silu_and_mul_op(), rmsnorm_op()
    xs, y = randn(5, 30, gen=gen), randn(30, gen=gen)
    got = torch.vmap(add, in_dims=(0, None))(xs, y)
    assert torch.equal(got, torch.stack([add(x, y) for x in xs]))
    assert torch.equal(got, xs + y)
    got = torch.vmap(add, in_dims=(1, 0))(xs.T.contiguous(), xs)  # batched along a strided dimension
    assert torch.equal(got, xs.T.contiguous().T + xs)
    hs = randn(3, 4, 10, gen=gen)
    got = torch.vmap(silu)(hs)
    assert torch.equal(got, torch.stack([silu(h) for h in hs]))
    torch.testing.assert_close(got, silu_and_mul_reference(hs), rtol=1e-5, atol=1e-6)
    zs, w = randn(3, 4, 16, gen=gen, dtype=torch.float16), randn(16, gen=gen, dtype=torch.float16)
    ys, rstds = torch.vmap(rms, in_dims=(0, None))(zs, w)
    loop = [rms(z, w) for z in zs]
    assert torch.equal(ys, torch.stack([r[0] for r in loop])) and torch.equal(rstds, torch.stack([r[1] for r in loop]))
    assert_rmsnorm((ys, rstds), zs, w)


# ---------------------------------------------------------------------------
# 7. Registration errors
# ---------------------------------------------------------------------------
def _registration_error(call, types, *patterns):
    with pytest.raises(types) as info:
        call()
    msg = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, msg), f"{msg!r} does not match {pattern!r}"
    return msg


def test_registration_errors():
    add, rms, silu = bound("add"), bound("rmsnorm"), bound("silu_and_mul")
    scale = tvmfast.bind(kernels.build_scale(64))
    v = torch.empty(64)
    scale_args = (v, v, 1.0, 1)  # (a, b, float alpha, int shift)
    name = fresh_name("never_half_registered")
    like = alloc.like(0)
    # An output position that is not an int, out of range, or not a tensor argument.
    for pos in ("2", 2.0, True):
        _registration_error(lambda: add.as_torch_op(name, outputs={pos: like}),  # noqa: B023
                            (ValueError, TypeError), re.escape(repr(pos)), "position")
    for pos in (3, -1, 100):
        _registration_error(lambda: add.as_torch_op(name, outputs={pos: like}),  # noqa: B023
                            ValueError, rf"position {pos}\b", "not a tensor argument")
    for pos in (2, 3):
        _registration_error(lambda: scale.as_torch_op(name, example_args=scale_args,  # noqa: B023
                                                      outputs={pos: like}),  # noqa: B023
                            ValueError, rf"position {pos}\b", "not a tensor argument")
    # An output also in mutates_args.
    _registration_error(lambda: add.as_torch_op(name, mutates_args=(2,), outputs={2: like}),
                        ValueError, r"#2\b", "mutates_args")
    # A spec reading a non-tensor argument, an output, or no argument at all.
    for spec, read in [(alloc.like(2), 2), (alloc.like(0, shape=[alloc.dim(3, 0)]), 3),
                       (alloc.like(0, shape=[alloc.dims(2)]), 2)]:
        _registration_error(lambda: scale.as_torch_op(name, example_args=scale_args,  # noqa: B023
                                                      outputs={1: spec}),  # noqa: B023
                            ValueError, rf"reads argument #{read}\b", "not a tensor input")
    _registration_error(lambda: add.as_torch_op(name, outputs={2: alloc.like(2)}),
                        ValueError, r"reads argument #2\b", "not a tensor input")
    _registration_error(lambda: add.as_torch_op(name, outputs={2: alloc.like(7)}),
                        ValueError, r"reads argument #7\b")
    _registration_error(lambda: rms.as_torch_op(name, outputs={2: alloc.like(0),
                                                               3: alloc.like(0, shape=[alloc.dim(2, 0)])}),
                        ValueError, r"#3\b", r"reads argument #2\b", "not a tensor input")
    # dtype not a torch.dtype.
    for dtype in ("float32", float, 6):
        _registration_error(lambda: add.as_torch_op(name, outputs={2: alloc.like(0, dtype=dtype)}),  # noqa: B023
                            TypeError, r"#2\b", "dtype", "torch.dtype")
    # A spec that does not apply to the example arguments.
    x = torch.empty(4, 6)
    for spec in (alloc.like(0, shape=[alloc.dim(0, 2)]), alloc.like(0, shape=[alloc.dim(0, -3) // 2]),
                 alloc.like(0, shape=[alloc.dim(0, 0) - 9])):
        _registration_error(lambda: silu.as_torch_op(name, example_args=(x, x), outputs={1: spec}),  # noqa: B023
                            ValueError, r"#1\b", "example", re.escape(repr(spec)))
    # A spec that is neither alloc.like nor a callable.
    _registration_error(lambda: add.as_torch_op(name, outputs={2: (8,)}), TypeError, r"#2\b", "alloc.like")
    # returns= and outputs= together.
    _registration_error(lambda: add.as_torch_op(name, returns=lambda a, b, c: a, outputs={2: like}),
                        ValueError, "returns=", "outputs=")
    # Nothing was registered by the refused calls: the name is free for the right registration.
    op = add.as_torch_op(name, outputs={2: like})
    assert_schema(op, 2, 1)
    a, b = torch.randn(9), torch.randn(9)
    assert torch.equal(op(a, b), a + b)


def test_spec_construction_errors():
    with pytest.raises(TypeError, match="int"):
        alloc.dim(0, 1) + 1.5
    with pytest.raises(TypeError, match="int"):
        alloc.dim(0, 1.0)
    with pytest.raises(TypeError, match="int"):
        alloc.dims("0")
    with pytest.raises(ValueError, match="positive"):
        alloc.dim(0, 1) // 0
    with pytest.raises(TypeError, match="shape"):
        alloc.like(0, shape=[1.5])
    with pytest.raises(ValueError, match=">= 0"):
        alloc.like(0, shape=[-1])


# ---------------------------------------------------------------------------
# 9. A Python-callable spec
# ---------------------------------------------------------------------------
def test_python_callable_spec(gen):
    op = bound("add").as_torch_op(fresh_name("add_callable"), outputs={2: lambda a, b: torch.empty_like(a)})
    assert_schema(op, 2, 1)
    a, b = randn(50, gen=gen), randn(50, gen=gen)
    got = []
    frames = tvmfast_frames(lambda: got.append(op(a, b)))
    assert torch.equal(got[0], a + b)
    assert_fresh_output(got[0], (50,), torch.float32, (a, b))
    assert any(f.startswith("<tvmfast op") for f in frames), frames  # the Python kernel
    # Two outputs, one declarative and one callable: the callable gets the op's inputs (x, w).
    seen = []

    def rstd_spec(x, w):
        seen.append((tuple(x.shape), tuple(w.shape)))
        return x.new_empty(x.shape[0], dtype=torch.float32)

    rms = rmsnorm_op(outputs={2: alloc.like(0), 3: rstd_spec})
    assert_schema(rms, 2, 2)
    x, w = randn(7, 48, gen=gen, dtype=torch.float16), randn(48, gen=gen, dtype=torch.float16)
    assert_rmsnorm(rms(x, w), x, w)
    assert seen == [((7, 48), (48,))]
    # and under torch.compile (the callable is the fake implementation too), dynamic shapes
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, w: rms(x, w)[1] * 2, backend="inductor", fullgraph=True, dynamic=True)
    for m, n in ((3, 16), (8, 40)):
        x, w = randn(m, n, gen=gen, dtype=torch.float16), randn(n, gen=gen, dtype=torch.float16)
        torch.testing.assert_close(compiled(x, w), rmsnorm_reference(x, w)[1] * 2, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# 2. dim arithmetic with a negative value on the way (after the tests that need no call to leave the C path)
# ---------------------------------------------------------------------------
def test_negative_value_before_floordiv(gen):
    _case_negative_value_before_floordiv(gen)


# ---------------------------------------------------------------------------
# 8. Call-time errors: a spec that does not apply to the inputs
# ---------------------------------------------------------------------------
def test_call_time_spec_error(gen):
    _case_spec_does_not_apply(gen)


def test_call_time_spec_error_under_torch_compile(gen):
    """The fake implementation refuses inputs the spec does not apply to with the same clear error."""
    f, _ = _probe()
    x2 = randn(4, 6, gen=gen)
    name = fresh_name("probe_compiled")
    op = f.as_torch_op(name, example_args=(x2, x2, x2), outputs={2: alloc.like(0, shape=[alloc.dim(0, 1)])})
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, y: op(x, y) * 2, backend="aot_eager", fullgraph=True)
    with pytest.raises(Exception) as info:
        compiled(randn(8, gen=gen), x2)
    assert name in str(info.value) and "dim(0, 1)" in str(info.value), str(info.value)


# ---------------------------------------------------------------------------
# 9. Calls that leave the C path after it allocated an output free it (memory stays flat)
# ---------------------------------------------------------------------------
def test_outputs_allocated_before_a_fallback_are_freed(gen):
    """rmsnorm's first output (8 MB) is allocated in C, then its second output's spec fails for these
    inputs (a negative size): the C kernel frees the first and the Python kernel raises the spec's
    error; and calls that leave the C path for a misaligned view (1 MB outputs). 200 of each, twice: a
    leaked output would grow the process by 1.6 GB, or 200 MB."""
    psutil = pytest.importorskip("psutil")
    xe = torch.empty(6, 5, dtype=torch.float16)  # 6 rows: the spec applies to the example arguments
    bad = bound("rmsnorm").as_torch_op(fresh_name("rmsnorm_bad_spec"), example_args=(xe, xe[0], xe, torch.empty(6)),
                                       outputs={2: alloc.like(0),
                                                3: alloc.like(0, dtype=torch.float32, shape=[alloc.dim(0, 0) - 5])})
    op = rmsnorm_op(fresh_name("rmsnorm_fallback"))
    n = 1 << 20
    x = randn(4, n, gen=gen, dtype=torch.float16)  # 8 MB; 4 rows: 4 - 5 < 0 for the second output
    w = randn(n, gen=gen, dtype=torch.float16)
    m = 1 << 16  # 1 MB views (a kernel call each)
    flat = torch.zeros(8 * m + 1, dtype=torch.float16)
    view = flat[1:].view(8, m)  # 2 bytes past a 64-byte boundary: the C path leaves it
    view.copy_(randn(8, m, gen=gen, dtype=torch.float16))
    wm = randn(m, gen=gen, dtype=torch.float16)

    def rss():
        return psutil.Process().memory_info().rss

    def burst():
        for _ in range(200):
            with pytest.raises(ValueError, match="negative"):
                bad(x, w)
            y, r = op(view, wm)
            del y, r

    burst()  # allocator caches warm
    before = rss()
    burst()
    grown = rss() - before
    assert grown < 128 << 20, f"the process grew by {grown >> 20} MB over 400 calls"
    y, r = op(view, wm)  # and the op still computes
    torch.testing.assert_close(r, torch.rsqrt(view.float().pow(2).mean(-1) + EPS), rtol=2e-3, atol=2e-3)


# ---------------------------------------------------------------------------
# Last: the C path's report after a call that left it (the tests above check "none" after C-path calls)
# ---------------------------------------------------------------------------
def test_last_fallback_is_none_after_a_c_path_call(gen):
    """_native_op_last_fallback() is "none" when the last call took the C path, also after an earlier call
    that took the Python kernel."""
    if not _native_expected():
        pytest.skip(f"native torch ops are off here: {_core._native_op_state()}")
    op = add_op()
    base = randn(40, gen=gen)
    view = base[3:20]  # a view: the C path leaves it to the Python kernel
    assert torch.equal(op(view, view), view + view)
    assert _core._native_op_last_fallback() != "none"
    a, b = randn(17, gen=gen), randn(17, gen=gen)
    assert tvmfast_frames(lambda: op(a, b)) == []  # this call took the C path
    assert _core._native_op_last_fallback() == "none", _core._native_op_last_fallback()
