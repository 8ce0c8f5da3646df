"""CuTe DSL kernels (nvidia-cutlass-dsl, what flash-attention 4 is written in) bound with
tvmfast: ``bind(compiled)`` takes what ``cute.compile(..., options="--enable-tvm-ffi")``
returns and behaves like ``compiled(*args)``.  Compiling needs no GPU; host-only kernels
run on the CPU; the GPU kernels run where CUDA is.  Skipped without nvidia-cutlass-dsl."""
import pytest
import tvm_ffi

import tvmfast

torch = pytest.importorskip("torch")
cute_kernels = pytest.importorskip("support.cute_kernels", reason="needs nvidia-cutlass-dsl",
                                   exc_type=ImportError)


@pytest.fixture(scope="module")
def host_add():
    return cute_kernels.compile_host_add()


def outcome(call):
    try:
        return "ok", call()
    except Exception as e:  # noqa: BLE001  (compared as such)
        return "error", e


def test_bind_takes_the_compiled_object(host_add):
    f = tvmfast.bind(host_add)
    assert f.function is host_add.__tvm_ffi_object__()
    assert f.num_args == 3 and f.alignment == 1
    a, b = torch.randn(1000), torch.randn(1000)
    out, ref = torch.full((1000,), float("nan")), torch.full((1000,), float("nan"))
    assert f(a, b, out) is None
    host_add(a, b, ref)
    assert torch.equal(out, a + b) and torch.equal(out, ref)
    p = f.prepare(a, b, out)
    out.fill_(float("nan"))
    p()
    assert torch.equal(out, a + b)


@pytest.mark.parametrize("bad", ["dtype", "count", "ndim", "keyword"])
def test_same_errors_as_the_compiled_call(host_add, bad):
    f = tvmfast.bind(host_add)
    a = torch.randn(16)
    args = {"dtype": (a, a, torch.zeros(16, dtype=torch.float64)), "count": (a, a),
            "ndim": (a, a, torch.zeros(4, 4)), "keyword": (a, a)}[bad]
    kwargs = {"c": torch.zeros(16), "d": 1} if bad == "keyword" else {}
    kind_c, theirs = outcome(lambda: host_add(*args, **kwargs))
    kind_b, ours = outcome(lambda: f(*args, **kwargs))
    assert kind_c == kind_b == "error"
    assert type(ours) is type(theirs) and str(ours) == str(theirs)


def test_keywords_and_defaults_go_through_cutes_own_call():
    scaled = cute_kernels.compile_host_scaled()
    f = tvmfast.bind(scaled)
    a = torch.randn(64)
    for args, kwargs in [((a,), {}), ((a, 3.0), {}), ((a,), {"alpha": 3.0, "beta": 1.0}), ((a, 3.0), {"beta": -1.0})]:
        ours, ref = torch.zeros(64), torch.zeros(64)
        f(args[0], ours, *args[1:], **kwargs)
        scaled(args[0], ref, *args[1:], **kwargs)
        assert torch.equal(ours, ref)
    kind_c, theirs = outcome(lambda: scaled(a, torch.zeros(64), 3.0, 1.0))  # beta is keyword-only
    kind_b, ours = outcome(lambda: f(a, torch.zeros(64), 3.0, 1.0))
    assert kind_c == kind_b == "error" and type(ours) is type(theirs)
    with pytest.raises(TypeError, match="tvmfast.prepare: .* call it as f"):
        f.prepare(a, torch.zeros(64))


def test_gpu_kernels_bind_with_their_arity():
    add3, sum9 = cute_kernels.compile_add3(), cute_kernels.compile_sum9()
    f3, f9 = tvmfast.bind(add3), tvmfast.bind(sum9)
    assert (f3.num_args, f9.num_args) == (3, 9)
    # CPU tensors: the kernel's own device check, the same error as CuTe's call.
    a = torch.randn(8)
    kind_c, theirs = outcome(lambda: add3(a, a, a))
    kind_b, ours = outcome(lambda: f3(a, a, a))
    assert kind_c == kind_b == "error"
    assert type(ours) is type(theirs) and str(ours) == str(theirs)


def test_an_object_that_is_not_a_function_wrapper_is_refused():
    class NotAFunction:
        def __tvm_ffi_object__(self):
            return tvm_ffi.convert([1, 2])

    with pytest.raises(TypeError, match=r"__tvm_ffi_object__\(\) gave .*not a tvm_ffi.Function"):
        tvmfast.bind(NotAFunction())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("which", ["add3", "sum9"])
def test_gpu_kernel_runs_like_cutes_call(which):
    compiled = cute_kernels.compile_add3() if which == "add3" else cute_kernels.compile_sum9()
    k = 3 if which == "add3" else 9
    f = tvmfast.bind(compiled)
    n = 100_003
    ins = [torch.randn(n, device="cuda") for _ in range(k - 1)]
    ours, ref = torch.full((n,), float("nan"), device="cuda"), torch.full((n,), float("nan"), device="cuda")
    f(*ins, ours)
    compiled(*ins, ref)
    torch.cuda.synchronize()
    assert torch.equal(ours, ref) and torch.equal(ours, sum(ins))
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        ours.fill_(float("nan"))
        f.prepare(*ins, ours)()
    stream.synchronize()
    assert torch.equal(ours, sum(ins))
