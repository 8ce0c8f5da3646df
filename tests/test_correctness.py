"""Results of tvmfast calls against torch and against rt_mod(*args) itself."""
import os

import numpy as np
import pytest
import tvm_ffi

import tvm_kernels as kernels
import tvmfast
from tvmfast_test_utils import nan_like, needs_tvm

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


def test_bind_forms(add_mod, tmp_path, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    lib = str(tmp_path / "add.so")
    add_mod.export_library(lib)
    forms = [tvmfast.bind(add_mod), tvmfast.bind(add_mod, "main"), tvmfast.bind(add_mod["main"]),
             tvmfast.bind(lib), tvmfast.bind(os.path.relpath(lib)),
             tvmfast.bind(tvm_ffi.load_module(lib))]
    for f in forms:
        out = nan_like(a)
        f(a, b, out)
        assert torch.equal(out, a + b)


def test_bind_unknown_name(add_mod):
    with pytest.raises(AttributeError, match="no function named 'nope'"):
        tvmfast.bind(add_mod, "nope")
    with pytest.raises(FileNotFoundError, match="no such library"):
        tvmfast.bind("/nonexistent/lib.so")
    with pytest.raises(TypeError, match="expected a TVM runtime module"):
        tvmfast.bind(42)
    with pytest.raises(TypeError, match="name= is only for modules"):
        tvmfast.bind(add_mod["main"], "main")


def test_scalars_and_return_values():
    echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
    ref = tvm_ffi.get_global_func("testing.echo")
    for v in [3, -2**62, 2.5, True, False, None, "héllo"]:
        got = echo(v)
        assert got == ref(v) and type(got) is type(ref(v))


def test_tensor_returning_function_gives_torch_without_copy(gen):
    """A C++ function taking/returning ffi::Tensor gets a real ffi::Tensor, first call included."""
    g = tvm_ffi.get_global_func("testing.schema_id_tensor")
    f = tvmfast.bind(g)
    a = torch.randn(4, 3, generator=gen)
    for _ in range(2):
        r = f(a)
        assert isinstance(r, torch.Tensor) and r.data_ptr() == a.data_ptr()
        assert torch.equal(r, a)


def test_identity_function_returns_what_tvm_ffi_returns(gen):
    """An echo gives a new torch tensor on the same memory, as through tvm_ffi."""
    raw = tvm_ffi.get_global_func("testing.echo")
    echo = tvmfast.bind(raw)
    a = torch.randn(5, generator=gen)
    ours, theirs = echo(a), raw(a)
    assert type(ours) is type(theirs) is torch.Tensor
    assert ours is not a and theirs is not a
    assert ours.data_ptr() == theirs.data_ptr() == a.data_ptr()
    assert ours.shape == a.shape and ours.stride() == a.stride() and torch.equal(ours, a)
    del a
    assert torch.equal(ours, theirs)  # the result keeps the memory alive


def test_errors_inside_tvm_match_rt_mod():
    f = tvmfast.bind(tvm_ffi.get_global_func("testing.test_raise_error"))
    ref = tvm_ffi.get_global_func("testing.test_raise_error")
    for kind in ["ValueError", "RuntimeError", "IndexError", "TypeError"]:
        with pytest.raises(Exception) as ours:
            f(kind, "message 42")
        with pytest.raises(Exception) as theirs:
            ref(kind, "message 42")
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)


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


def test_many_arguments_heap_path(gen):
    """More arguments than the stack buffers hold."""
    mod = kernels.build_sum_args(70, n=16)
    f = tvmfast.bind(mod)
    ts = [torch.randn(16, generator=gen) for _ in range(69)]
    out = torch.full((16,), float("nan"))
    f(*ts, out)
    torch.testing.assert_close(out, torch.stack(ts).sum(0), rtol=1e-5, atol=1e-5)


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


def test_direct_torch_export_is_active(add_mod):
    """The fast torch path passed its self-test on this torch (disabled only by env)."""
    f = tvmfast.bind(add_mod)
    a = torch.randn(128)
    f(a, a, torch.empty(128))
    if os.environ.get("TVMFAST_TORCH_DIRECT", "1") != "0":
        assert tvmfast._core._torch_direct_export_enabled()
        state = tvmfast._core._torch_direct_export_state()
        # torch 2.14 added `bool read_only` to at::toDLPackNonOwning: that signature must be
        # the one found there, never the old one.
        torch_version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
        signature = "tensor, dltensor, read_only" if torch_version >= (2, 14) else "tensor, dltensor)"
        assert state.startswith("on (") and signature in state, state
        assert tvmfast._core._torch_lazy_view_check() == "keyset"


@pytest.mark.skipif(not hasattr(torch, "_lazy_clone"), reason="torch without copy-on-write tensors")
def test_copy_on_write_output_is_materialised_not_shared(add_mod, gen):
    """A lazy (copy-on-write) clone passed as the output: the kernel writes the clone's own
    copy, never the storage it shares with the original (as rt_mod does through the
    exchange API)."""
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    original = torch.randn(128, generator=gen)
    kept = original.clone()
    out = torch._lazy_clone(original)
    f(a, b, out)
    assert torch.equal(out, a + b)
    assert torch.equal(original, kept)
    # and as an input: read, not copied or changed
    source = torch._lazy_clone(a)
    out2 = nan_like(a)
    f(source, b, out2)
    assert torch.equal(out2, a + b) and torch.equal(source, a)


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


@needs_tvm
def test_exchange_api_path_without_direct_export(tmp_path):
    """TVMFAST_TORCH_DIRECT=0: torch tensors through torch's DLPack C exchange API."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import torch, tvmfast
        from tvmfast import _core
        import tvm_kernels as kernels
        f = tvmfast.bind(kernels.build_add(128))
        a, b = torch.randn(128), torch.randn(128)
        out = torch.full((128,), float("nan"))
        f(a, b, out)
        assert torch.equal(out, a + b)
        assert not _core._torch_direct_export_enabled()
        assert _core._torch_direct_export_state() == "off (disabled by TVMFAST_TORCH_DIRECT=0)"
        # lazy neg/conj views are still found at C level (one load per tensor)
        assert _core._torch_lazy_view_check() == "keyset"
        try:
            f(a, torch.empty(128, device="meta"), out)
        except RuntimeError as e:
            assert "argument #1" in str(e) and "meta" in str(e), e
        else:
            raise AssertionError("no error")
        print("ok")
    """)
    tests_dir = os.path.dirname(os.path.abspath(__file__))  # tvm_kernels
    pythonpath = os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TVMFAST_TORCH_DIRECT="0", PYTHONPATH=pythonpath)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


class BrokenDLPack:
    def __dlpack__(self, **kwargs):
        raise BufferError("no export today")

    def __dlpack_device__(self):
        return (1, 0)


def test_failing_dlpack_producer_fails_as_through_rt_mod_naming_the_argument(add_mod, gen):
    f = tvmfast.bind(add_mod)
    a = torch.randn(128, generator=gen)
    with pytest.raises(Exception) as theirs:
        add_mod(a, BrokenDLPack(), a)
    with pytest.raises(type(theirs.value)) as ours:
        f(a, BrokenDLPack(), a)
    assert str(ours.value) == f"tvmfast: argument #1: BrokenDLPack cannot be passed as a DLPack tensor: {theirs.value}"
    out = nan_like(a)
    f(a, a, out)
    assert torch.equal(out, a + a)


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


def test_numpy_scalars(scale_mod, gen):
    f = tvmfast.bind(scale_mod)
    a = torch.randn(64, generator=gen)
    out = nan_like(a)
    f(a, out, np.float32(0.25), np.int64(4))
    torch.testing.assert_close(out, a * 0.25 + 4)


def test_stream_hook_ignores_cpu_and_foreign_objects():
    from tvmfast._torch import current_stream

    assert current_stream(torch.randn(2), 1, 0) is None        # a CPU device type
    assert current_stream(object(), 2, 0) is None              # not a torch tensor


def test_lazy_neg_and_conj_views_are_refused(add_mod, gen):
    """DLPack has no field for torch's lazy negation/conjugation bits (rt_mod computes as
    if they were not set): a clear error naming the argument, and resolved views work."""
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    for bad in [torch._neg_view(b), torch._neg_view(b)[:], torch._neg_view(b).view(128)]:
        with pytest.raises(ValueError, match=r"tvmfast: argument #1: tensor has its negative bit set.*resolve_neg"):
            f(a, bad, out)
        with pytest.raises(ValueError, match="negative bit"):
            f.prepare(a, bad, out)()
    f(a, torch._neg_view(b).resolve_neg(), out)
    assert torch.equal(out, a - b)
    echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
    z = torch.randn(4, dtype=torch.cfloat, generator=gen)
    with pytest.raises(ValueError, match="conjugate bit set.*resolve_conj"):
        echo(z.conj())
    assert torch.equal(echo(z.conj().resolve_conj()), z.conj())
