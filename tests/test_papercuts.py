"""Small things a new user meets first: what a bound function says about itself, and the
hints errors give."""
import pytest
import tvm_ffi

import tvmfast

torch = pytest.importorskip("torch")


def test_num_args_and_repr_after_the_arity_is_learned(add_mod):
    f = tvmfast.bind(add_mod)
    assert f.num_args is None and f.arity is None
    assert "num_args=None" in repr(f)
    a = torch.randn(128)
    f(a, a, torch.empty(128))
    assert f.num_args == f.arity == 3
    assert "num_args=3" in repr(f)
    assert tvmfast.bind(add_mod, num_args=3).num_args == 3


def test_bind_of_a_python_function_says_how_to_wrap_it():
    def plus_one(x):
        return x + 1

    with pytest.raises(TypeError, match=r"tvm_ffi.convert\(fn\)"):
        tvmfast.bind(plus_one)
    wrapped = tvmfast.bind(tvm_ffi.convert(plus_one))  # the fix the message gives
    assert wrapped(41) == 42


def test_not_callable_gets_no_wrapping_hint():
    with pytest.raises(TypeError) as info:
        tvmfast.bind(42)
    assert "tvm_ffi.convert" not in str(info.value)
