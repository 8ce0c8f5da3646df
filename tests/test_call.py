"""A call through a bound function: every kind of argument a callee takes reaches it as through
``rt_mod(*args)`` and the result is torch's and rt_mod's, on fresh random inputs.  TVM kernels of
float32, float16 and int4 data, symbolic dimensions, scalar parameters (Python and numpy), views at
a storage offset, torch and numpy tensors, tvm_ffi tensors and producers with only ``__dlpack__``,
more arguments than the inline buffers hold, more Python types than the converter's cache holds,
strings with NUL characters, and calls through ``tp_call`` or a ``tvm_ffi.Function`` subclass's own
``__call__``."""
import numpy as np
import pytest
import tvm_ffi

import tvmfast
from support import tvm_kernels as kernels
from support.helpers import nan_like

torch = pytest.importorskip("torch")


def test_add_float32_matches_torch_and_rt_mod(add_mod, gen):
    f = tvmfast.bind(add_mod)
    for _ in range(5):
        a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
        out, out_ref = nan_like(a), nan_like(a)
        assert f(a, b, out) is None
        assert add_mod(a, b, out_ref) is None
        torch.testing.assert_close(out, a + b, rtol=0, atol=0)
        assert torch.equal(out, out_ref)


def test_add_float16(add_fp16_mod, gen):
    f = tvmfast.bind(add_fp16_mod)
    a = torch.randn(256, generator=gen).half()
    b = torch.randn(256, generator=gen).half()
    out = nan_like(a)
    f(a, b, out)
    torch.testing.assert_close(out, a + b)


def test_int4_gemv_matches_reference(gemv_mod, gen):
    f = tvmfast.bind(gemv_mod)
    for _ in range(3):
        x, w, scale, zeros = kernels.random_int4_gemv_inputs(256, 512, generator=gen)
        out = torch.full((1, 256), float("nan"), dtype=torch.float16)
        out_rt = out.clone()
        f(x, w, scale, zeros, out)
        gemv_mod(x, w, scale, zeros, out_rt)
        ref = kernels.int4_gemv_reference(x, w, scale, zeros).float()
        rel = (out.float() - ref).abs().max() / ref.abs().max()
        assert rel < 1e-2, rel
        assert torch.equal(out, out_rt)


@pytest.mark.parametrize("n", [1, 7, 64, 1000, 4099])
def test_symbolic_dimension(add_dyn_mod, gen, n):
    f = tvmfast.bind(add_dyn_mod)
    a, b = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    out = nan_like(a)
    f(a, b, out)
    assert torch.equal(out, a + b)


def test_scalar_parameters(scale_mod, gen):
    f = tvmfast.bind(scale_mod)
    a = torch.randn(64, generator=gen)
    alpha = float(torch.randn(1, generator=gen))
    shift = int(torch.randint(-5, 5, (1,), generator=gen))
    out, out_rt = nan_like(a), nan_like(a)
    f(a, out, alpha, shift)
    scale_mod(a, out_rt, alpha, shift)
    torch.testing.assert_close(out, a * alpha + shift)
    assert torch.equal(out, out_rt)


def test_numpy_scalars(scale_mod, gen):
    f = tvmfast.bind(scale_mod)
    a = torch.randn(64, generator=gen)
    out = nan_like(a)
    f(a, out, np.float32(0.25), np.int64(4))
    torch.testing.assert_close(out, a * 0.25 + 4)


# ---------------------------------------------------------------------------
# Views, numpy arrays, tvm_ffi tensors, DLPack producers
# ---------------------------------------------------------------------------


def test_views_with_storage_offset(gen):
    """Slices read and write at their offset, and nothing else is touched
    (a kernel whose buffers take any offset: offset_factor=1, bind(alignment=1))."""
    f = tvmfast.bind(kernels.build_add(128, offset_factor=1), alignment=1)
    big_a = torch.randn(300, generator=gen)
    big_b = torch.randn(2, 200, generator=gen)
    big_out = torch.randn(500, generator=gen)
    before = big_out.clone()
    a, b, out = big_a[17:145], big_b[1, 33:161], big_out[301:429]
    assert out.storage_offset() == 301
    f(a, b, out)
    assert torch.equal(big_out[301:429], big_a[17:145] + big_b[1, 33:161])
    assert torch.equal(big_out[:301], before[:301])
    assert torch.equal(big_out[429:], before[429:])


def aligned_numpy(values):
    """A numpy copy of ``values`` whose data starts on a 64-byte boundary (numpy
    itself only guarantees 16)."""
    raw = np.empty(len(values) + 16, dtype="float32")
    skip = (-raw.ctypes.data % 64) // 4
    arr = raw[skip:skip + len(values)]
    arr[:] = values
    return arr


def test_other_tensor_kinds(add_mod, gen):
    """tvm_ffi.Tensor as is, numpy through __dlpack__, mixed with torch."""
    f = tvmfast.bind(add_mod)
    a = torch.randn(128, generator=gen)
    b_np = aligned_numpy(torch.randn(128, generator=gen).numpy())
    out = nan_like(a)
    f(tvm_ffi.from_dlpack(a), b_np, out)
    assert torch.equal(out, a + torch.from_numpy(b_np))
    out_np = aligned_numpy(np.full(128, np.nan, dtype="float32"))
    f(a, a, out_np)
    assert np.array_equal(out_np, (a + a).numpy())


class DLPackOnly:
    """A producer with __dlpack__ and nothing else, as torch builds without the C
    exchange capsule look to tvmfast."""

    def __init__(self, t):
        self.t = t

    def __dlpack__(self, **kwargs):
        return self.t.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


def test_producer_without_exchange_api_goes_through_dlpack(add_mod, gen):
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    f(DLPackOnly(a), DLPackOnly(b), DLPackOnly(out))
    assert torch.equal(out, a + b)
    p = f.prepare(DLPackOnly(a), b, DLPackOnly(out))
    a.add_(1)
    p()
    assert torch.equal(out, a + b)


# ---------------------------------------------------------------------------
# Many arguments, many argument types, other ways to call
# ---------------------------------------------------------------------------


def test_many_arguments_heap_path(gen):
    """More arguments than the stack buffers hold."""
    mod = kernels.build_sum_args(70, n=16)
    f = tvmfast.bind(mod)
    ts = [torch.randn(16, generator=gen) for _ in range(69)]
    out = torch.full((16,), float("nan"))
    f(*ts, out)
    torch.testing.assert_close(out, torch.stack(ts).sum(0), rtol=1e-5, atol=1e-5)


def test_many_argument_types_beyond_the_type_cache():
    """More distinct Python types than the converter cache holds: every one still right,
    and the cached ones are not disturbed."""
    raw = tvm_ffi.get_global_func("testing.echo")
    echo = tvmfast.bind(raw)
    int_types = [type(f"MyInt{i}", (int,), {}) for i in range(40)]
    float_types = [type(f"MyFloat{i}", (float,), {}) for i in range(40)]
    for _ in range(2):
        for i, (it, ft) in enumerate(zip(int_types, float_types)):
            for value in [it(i), ft(i + 0.5)]:
                ours, theirs = echo(value), raw(value)
                assert ours == theirs == value and type(ours) is type(theirs)
    a = torch.randn(3)
    assert torch.equal(echo(a), a) and echo(7) == 7 and echo(None) is None


def test_call_through_pyobject_call(add_mod, gen):
    """Also right through tp_call (functools.partial, f(*args) via PyObject_Call)."""
    import functools

    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    functools.partial(f, a)(b, out)
    assert torch.equal(out, a + b)
    out = nan_like(a)
    type(f).__call__(f, a, b, out)
    assert torch.equal(out, a + b)


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


# ---------------------------------------------------------------------------
# Strings with NUL characters arrive whole
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "x\x00\x00y\x00", "héllo\x00wörld", "a\x00" * 40])
def test_strings_with_nul_arrive_whole(text):
    echo_fn = tvm_ffi.get_global_func("testing.echo")
    callback = tvm_ffi.convert(lambda s: s)
    for fn in (echo_fn, callback):
        direct = fn(text)
        assert direct == text  # tvm_ffi itself keeps the whole string
        f = tvmfast.bind(fn)
        assert f(text) == text
        assert f.prepare(text)() == text
        assert tvmfast.bind(fn, num_args=1).freeze({0: text})() == text
    # and the function still works
    assert tvmfast.bind(echo_fn)("plain") == "plain"


def test_string_length_seen_by_callee():
    """The callee sees every character (a C++ side that measures: ffi.String's size)."""
    text = "ab\x00cd\x00"
    seen = []
    f = tvmfast.bind(tvm_ffi.convert(lambda s: seen.append((len(s), s))))
    f(text)
    f.prepare(text)()
    assert seen == [(len(text), text)] * 2
