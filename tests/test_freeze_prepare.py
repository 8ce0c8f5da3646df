"""freeze() and prepare(): arguments converted once, contents read at each call.  freeze's keys are
normalised with operator.index and checked (duplicates, bools and anything out of range refused);
prepared and frozen calls report errors as the function would; call_ptrs; calls of more arguments
than the inline buffers hold; a variadic function prepared after calls of other counts.

The freeze-key cases run in a child process (support.isolation.run_isolated).
"""
from __future__ import annotations

import gc
import operator
import sys

import numpy as np
import pytest
import tvm_ffi

import tvmfast
from support import tvm_kernels as kernels
from support.helpers import assert_clear_error, nan_like
from support.isolation import assert_all_ok, child_env, outcome, run_cases, run_isolated

torch = pytest.importorskip("torch")

from support.add_checks import Junk, assert_add_works, bind_add, nan_tensor, rand  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return child_env(tmp_path_factory)


def child_main(names: list[str]) -> None:
    run_cases(sys.modules[__name__], names)


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


def test_prepare_of_a_variadic_function_after_calls_of_other_counts():
    f = tvmfast.bind(tvm_ffi.convert(lambda *args: len(args)))
    assert f(1, 2) == 2 and f(1, 2, 3) == 3
    assert f.prepare(1, 2)() == 2


# ---------------------------------------------------------------------------
# freeze keys: normalised with operator.index, checked, duplicates refused
# ---------------------------------------------------------------------------


class OddHashInt(int):
    """An int whose hash differs from the int's."""

    def __hash__(self):
        return 1_000_003 + int(self)

    def __eq__(self, other):
        return self is other


class Index:
    """Not an int, but has __index__."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def _frozen_add_right(g, frozen_pos: int, frozen_value) -> None:
    others = [rand(), rand(), nan_tensor()]
    others[frozen_pos] = frozen_value
    out = others[2]
    out.fill_(float("nan"))
    expected = others[0] + others[1]
    g(*[others[i] for i in range(3) if i != frozen_pos])
    assert torch.equal(out, expected)


def _case_freeze_key_normalised(which: str):
    """Keys that operator.index makes a valid position: used as that position."""
    f = bind_add(num_args=3)
    key = {"odd_hash_int": OddHashInt(1), "numpy_int64": np.int64(1), "numpy_uint8": np.uint8(1),
           "index_object": Index(1)}[which]
    assert operator.index(key) == 1
    w = rand()
    outcome_kind, g = outcome(lambda: f.freeze({key: w}))
    if outcome_kind == "error":
        raise AssertionError(f"freeze({{{key!r}: w}}) raised {type(g).__name__}: {g}; "
                             f"operator.index makes it position 1")
    assert g.num_dynamic == 2
    _frozen_add_right(g, 1, w)
    assert_add_works(f)


def _case_freeze_key_refused(which: str):
    f = bind_add(num_args=3)
    w, w2 = rand(), rand()
    keys = {
        "bool": {True: w},
        "negative": {-1: w},
        "out_of_range": {3: w},
        "huge": {2 ** 70: w},
        "huge_negative": {-(2 ** 63) - 1: w},
        "string": {"1": w},
        "float": {1.0: w},
        "none": {None: w},
        "duplicate_odd_hash": {1: w, OddHashInt(1): w2},
        "duplicate_index_object": {1: w, Index(1): w2},
        "duplicate_numpy": {np.int32(2): w, OddHashInt(2): w2},
    }[which]
    assert len(keys) >= 1
    kind, err = outcome(lambda: f.freeze(keys))
    assert kind == "error", f"freeze({keys!r}) was accepted"
    types = (ValueError, TypeError, OverflowError) if which.startswith("huge") else (ValueError, TypeError)
    assert_clear_error(err, types, r"tvmfast|freeze")
    assert_add_works(f)
    g = f.freeze({1: w})  # a valid freeze still works
    _frozen_add_right(g, 1, w)


def _case_freeze_key_index_mutates_dict():
    """A key whose __index__ empties the dict being frozen (dropping the only reference
    to its value): a clear error, or a function using the values the dict held."""
    f = bind_add(num_args=3)
    w_ref = rand()
    d: dict = {}

    class Evil:
        def __index__(self):
            d.clear()
            gc.collect()
            return 1

    d[Evil()] = w_ref.clone()
    kind, g = outcome(lambda: f.freeze(d))
    if kind == "ok":
        junk = Junk()
        _frozen_add_right(g, 1, w_ref)
        assert junk.intact()
    assert_add_works(f)


FREEZE_KEY_CASES = ([f"_case_freeze_key_normalised:{w}" for w in
                     ("odd_hash_int", "numpy_int64", "numpy_uint8", "index_object")]
                    + [f"_case_freeze_key_refused:{w}" for w in
                       ("bool", "negative", "out_of_range", "huge", "huge_negative", "string", "float", "none",
                        "duplicate_odd_hash", "duplicate_index_object", "duplicate_numpy")]
                    + ["_case_freeze_key_index_mutates_dict"])


def test_freeze_keys_normalised_checked_no_duplicates(env):
    assert_all_ok(run_isolated("test_freeze_prepare", FREEZE_KEY_CASES, env=env))
