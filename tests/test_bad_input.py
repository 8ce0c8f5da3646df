"""Bad input: a clear Python exception naming the argument, and the function still
works right after (never a crash)."""
import pytest
import tvm_ffi

import tvmfast
from tvmfast_test_utils import nan_like

torch = pytest.importorskip("torch")


def _good_call_works(f, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    f(a, b, out)
    assert torch.equal(out, a + b)


def _bad_cases():
    a = torch.randn(128)
    return {
        # name: (args, exception type, message regex)
        "too few": ((a, a), TypeError, r"Expected 3 arguments"),
        "too many": ((a, a, a, a), TypeError, r"Expected 3 arguments"),
        "dtype": ((a, a, a.double()), TypeError, r"Mismatched C.dtype on argument #2.*expected float32"),
        "shape": ((a, a, torch.randn(64)), ValueError, r"Invalid C.shape\[0\] on argument #2.*expected 128"),
        "ndim": ((a, torch.randn(128, 1), a), ValueError, r"Mismatched B.ndim on argument #1.*expected 1"),
        "non-contiguous": ((a, a, torch.randn(128, 2)[:, 0]), ValueError,
                           r"Mismatched C.strides on argument #2.*compact"),
        "transposed": ((torch.randn(8, 16).t().reshape(-1), a, torch.randn(16, 8).t()), ValueError,
                       r"ndim on argument #2"),
        "None": ((a, None, a), TypeError, r"Mismatched type on argument #1.*expected Tensor"),
        "list": ((a, a, [1.0] * 128), ValueError, r"Mismatched C.ndim on argument #2"),
        "string": ((a, "a", a), TypeError, r"Mismatched type on argument #1.*expected Tensor"),
        "int": ((a, a, 7), TypeError, r"Mismatched type on argument #2.*expected Tensor"),
        "float": ((1.5, a, a), TypeError, r"Mismatched type on argument #0.*expected Tensor"),
        "meta tensor": ((a, torch.empty(128, device="meta"), a), RuntimeError,
                        r"tvmfast: argument #1: Tensor cannot be passed as a DLPack tensor: "
                        r"Cannot pack tensors on meta$"),
        "0-d tensor": ((a, a, torch.tensor(1.0)), ValueError, r"C.ndim on argument #2.*expected 1"),
        "bool tensor": ((a, a > 0, a), TypeError, r"B.dtype on argument #1.*expected float32"),
        "object": ((object(), a, a), ValueError, r"Mismatched A.ndim on argument #0"),
        "dict": ((a, a, {}), ValueError, r"Mismatched C.ndim on argument #2"),
        # tvm_ffi's own conversion: the type depends on its version (checked against rt_mod below).
        "int64 overflow": ((a, a, 2**70), (ValueError, OverflowError), r""),
        "sparse": ((a, a, torch.randn(128).to_sparse()), RuntimeError,
                   r"tvmfast: argument #2: Tensor cannot be passed as a DLPack tensor: Cannot access data pointer"),
    }


# Arguments tvmfast leaves to tvm_ffi: the whole call is tvm_ffi's, so the error is rt_mod's exactly.
CONVERTED_BY_TVM_FFI = ["list", "object", "dict", "int64 overflow"]


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input_raises_clear_error_then_works(add_mod, gen, case):
    args, exc, pattern = _bad_cases()[case]
    f = tvmfast.bind(add_mod)
    _good_call_works(f, gen)
    with pytest.raises(exc, match="(?s)" + pattern):
        f(*args)
    _good_call_works(f, gen)


def test_tvm_side_errors_are_those_of_rt_mod(add_mod):
    """TVM's own checks run unchanged: same exception type and message as rt_mod."""
    f = tvmfast.bind(add_mod)
    cases = _bad_cases()
    for name in ["too few", "dtype", "shape", "ndim", "non-contiguous", "None", "int", "0-d tensor", "bool tensor",
                 *CONVERTED_BY_TVM_FFI]:
        args = cases[name][0]
        with pytest.raises(Exception) as ours:
            f(*args)
        with pytest.raises(Exception) as theirs:
            add_mod(*args)
        assert type(ours.value) is type(theirs.value), name
        assert str(ours.value) == str(theirs.value), name


def test_num_args_checked_before_the_call(add_mod):
    """A function that does not check its own arity gets tvmfast's check; a TVM module's
    function, which does (with its signature), refuses the call itself, as for rt_mod."""
    a = torch.randn(128)
    py_fn = tvm_ffi.convert(lambda *args: len(args))
    with pytest.raises(TypeError, match=r"^tvmfast: expected 3 arguments, got 2$"):
        tvmfast.bind(py_fn, num_args=3)(a, a)
    with pytest.raises(TypeError, match=r"^tvmfast: expected 1 argument, got 2$"):
        tvmfast.bind(py_fn, num_args=1)(a, a)
    with pytest.raises(Exception) as ours:
        tvmfast.bind(add_mod, num_args=3)(a, a)
    with pytest.raises(Exception) as theirs:
        add_mod(a, a)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value) and "main(" in str(ours.value)


def test_keyword_arguments_refused(add_mod):
    f = tvmfast.bind(add_mod)
    a = torch.randn(128)
    with pytest.raises(TypeError, match="positional arguments only"):
        f(a, a, c=a)


def test_unbound_instances_do_not_crash():
    with pytest.raises(TypeError, match="not initialized"):
        tvmfast.BoundFunction.__new__(tvmfast.BoundFunction)()
    with pytest.raises(TypeError, match="not initialized"):
        tvmfast.FrozenFunction.__new__(tvmfast.FrozenFunction)()


def test_producer_refusals_keep_rt_mods_exception_type(add_mod):
    """A tensor torch cannot export: the exception type rt_mod raises, naming the argument,
    with torch's reason but not its C++ backtrace."""
    f = tvmfast.bind(add_mod)
    a = torch.randn(128)
    for bad in [torch.empty(128, device="meta"), torch.randn(128).to_sparse()]:
        with pytest.raises(Exception) as theirs:
            add_mod(a, bad, a)
        with pytest.raises(Exception) as ours:
            f(a, bad, a)
        assert type(ours.value) is type(theirs.value)
        assert "\n" not in str(ours.value)
        assert str(ours.value).startswith("tvmfast: argument #1: ")
        assert str(theirs.value).split("\n")[0] in str(ours.value)


def test_ffi_object_with_null_handle(add_mod):
    f = tvmfast.bind(add_mod)
    empty = tvm_ffi.core.Object.__new__(tvm_ffi.core.Object)
    with pytest.raises(TypeError, match="argument #1: Object holds no object"):
        f(torch.randn(128), empty, torch.randn(128))
