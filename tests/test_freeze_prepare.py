"""freeze() and prepare(): arguments converted once, contents read at each call."""
import pytest

import tvmfast
from bench import kernels
from tvmfast_test_utils import nan_like

torch = pytest.importorskip("torch")


def test_freeze_static_arguments(gemv_mod, gen):
    f = tvmfast.bind(gemv_mod)
    x, w, scale, zeros = kernels.random_int4_gemv_inputs(256, 512, generator=gen)
    out = torch.full((1, 256), float("nan"), dtype=torch.float16)
    f(x, w, scale, zeros, out)
    g = f.freeze({1: w, 2: scale, 3: zeros})
    assert g.num_dynamic == 2
    for _ in range(3):
        x2 = torch.randn(1, 512, generator=gen).half()
        out2 = torch.full((1, 256), float("nan"), dtype=torch.float16)
        g(x2, out2)
        ref = kernels.int4_gemv_reference(x2, w, scale, zeros).float()
        assert ((out2.float() - ref).abs().max() / ref.abs().max()) < 1e-2
    # Frozen tensors are read at call time: new contents are seen.
    scale.mul_(2)
    out3 = torch.full((1, 256), float("nan"), dtype=torch.float16)
    g(x2, out3)
    ref = kernels.int4_gemv_reference(x2, w, scale, zeros).float()
    assert ((out3.float() - ref).abs().max() / ref.abs().max()) < 1e-2


def test_freeze_scalar_argument(scale_mod, gen):
    f = tvmfast.bind(scale_mod, num_args=4)
    g = f.freeze({2: 1.5, 3: -2})
    a = torch.randn(64, generator=gen)
    out = nan_like(a)
    g(a, out)
    torch.testing.assert_close(out, a * 1.5 - 2)


def test_prepare_sees_new_contents(add_mod, gen):
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    p = f.prepare(a, b, out)
    assert p() is None
    assert torch.equal(out, a + b)
    a.copy_(torch.randn(128, generator=gen))
    b.uniform_(generator=gen)
    out.fill_(float("nan"))
    p()
    assert torch.equal(out, a + b)


def test_prepared_and_frozen_calls_see_the_objects_as_they_are_now(add_mod, gen):
    """A prepared/frozen call is f(*same_objects) made now: a resized tensor gets the
    error f would give, one resized back (new storage) gets the right result."""
    f = tvmfast.bind(add_mod, num_args=3)
    a, b, out = torch.randn(128, generator=gen), torch.randn(128, generator=gen), torch.empty(128)
    p = f.prepare(a, b, out)
    g = f.freeze({1: b})
    p()
    a.resize_(256)
    with pytest.raises(ValueError) as prepared_err:
        p()
    with pytest.raises(ValueError) as direct_err:
        f(a, b, out)
    assert str(prepared_err.value) == str(direct_err.value)
    b.resize_(1 << 20)
    b.resize_(128)  # same shape again, on new storage
    b.copy_(torch.randn(128, generator=gen))
    a.resize_(128)
    for call in [lambda: p(), lambda: g(a, out)]:
        out.fill_(float("nan"))
        call()
        assert torch.equal(out, a + b)


def test_prepared_errors_still_checked(add_mod):
    f = tvmfast.bind(add_mod)
    p = f.prepare(torch.randn(128), torch.randn(128), torch.randn(64))
    with pytest.raises(ValueError, match=r"(?s)Invalid C.shape\[0\] on argument #2"):
        p()
    with pytest.raises(TypeError, match="tvmfast: expected 0 arguments, got 1"):
        p(1)


def test_freeze_argument_errors(add_mod):
    f = tvmfast.bind(add_mod)
    with pytest.raises(ValueError, match="needs the number of arguments"):
        f.freeze({0: torch.randn(128)})
    f = tvmfast.bind(add_mod, num_args=3)
    with pytest.raises(ValueError, match=r"tvmfast.freeze: position 5 is not in range\(0, 3\)"):
        f.freeze({5: torch.randn(128)})
    with pytest.raises(TypeError, match="takes a dict"):
        f.freeze([torch.randn(128)])
    # A value only tvm_ffi converts: every call of the frozen function is tvm_ffi's.
    a = torch.randn(128)
    with pytest.raises(ValueError) as frozen_err:
        f.freeze({1: [1, 2]})(a, a)
    with pytest.raises(ValueError) as direct_err:
        add_mod(a, [1, 2], a)
    assert str(frozen_err.value) == str(direct_err.value)
    g = f.freeze({0: torch.randn(128)})
    with pytest.raises(TypeError, match="expected 2 arguments, got 3"):
        g(torch.randn(128), torch.randn(128), torch.randn(128))


def test_call_ptrs(add_mod, gen):
    f = tvmfast.bind(add_mod)
    a, b, out = torch.randn(128, generator=gen), torch.randn(128, generator=gen), torch.empty(128)
    p = f.prepare(a, b, out)
    a2, b2, out2 = torch.randn(128, generator=gen), torch.randn(128, generator=gen), nan_like(out)
    p.call_ptrs(a2.data_ptr(), b2.data_ptr(), out2.data_ptr())
    assert torch.equal(out2, a2 + b2)
    with pytest.raises(TypeError, match="expected 3 data pointers, got 2"):
        p.call_ptrs(a2.data_ptr(), b2.data_ptr())
    with pytest.raises(ValueError, match="pointer #1 is null"):
        p.call_ptrs(a2.data_ptr(), 0, out2.data_ptr())
    with pytest.raises(ValueError, match="pointer #0 .* not 64-byte aligned"):
        p.call_ptrs(a2.data_ptr() + 4, b2.data_ptr(), out2.data_ptr())
    with pytest.raises(TypeError, match="pointer #2: expected int"):
        p.call_ptrs(a2.data_ptr(), b2.data_ptr(), 1.5)
    with pytest.raises(ValueError, match=r"pointer #0 \(-64\) is not an address"):
        p.call_ptrs(-64, b2.data_ptr(), out2.data_ptr())
    g = tvmfast.bind(add_mod, num_args=3).freeze({0: a})
    with pytest.raises(TypeError, match=r"tvmfast.call_ptrs: needs a prepared function"):
        g.call_ptrs(a2.data_ptr())
    # still right after all that
    p.call_ptrs(a2.data_ptr(), b2.data_ptr(), out2.data_ptr())
    assert torch.equal(out2, a2 + b2)


def test_prepare_and_freeze_limits(add_mod):
    f = tvmfast.bind(add_mod, num_args=3)
    a = torch.randn(128)
    with pytest.raises(TypeError, match=r"tvmfast.prepare: the function takes 3 arguments, got 2"):
        f.prepare(a, a)
    learned = tvmfast.bind(add_mod)
    learned(a, a, torch.empty(128))
    with pytest.raises(TypeError, match=r"tvmfast.prepare: the function takes 3 arguments, got 2"):
        learned.prepare(a, a)  # once the count is learned, refused here rather than at p()



def test_freeze_and_prepare_beyond_the_inline_buffers():
    """Calls of over 64 arguments use the call context's heap buffers, in every form."""
    from bench import kernels  # noqa: PLC0415

    rt_mod = pytest.importorskip("tvm") and kernels.build_sum_args(70, n=16)
    ts = [torch.randn(16) for _ in range(69)] + [torch.full((16,), float("nan"))]
    ref = torch.full((16,), float("nan"))
    rt_mod(*ts[:69], ref)
    f = tvmfast.bind(rt_mod)
    f(*ts)
    assert torch.equal(ts[69], ref)
    ts[69].fill_(float("nan"))
    g = f.freeze({i: ts[i] for i in range(0, 69, 2)})
    g(*[ts[i] for i in range(1, 69, 2)], ts[69])
    assert torch.equal(ts[69], ref)
    ts[69].fill_(float("nan"))
    p = f.prepare(*ts)
    p()
    assert torch.equal(ts[69], ref)
    ts[69].fill_(float("nan"))
    p.call_ptrs(*[t.data_ptr() for t in ts])
    assert torch.equal(ts[69], ref)
