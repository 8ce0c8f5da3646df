"""Issue 9, memory safety: every numbered case of the issue ends in the right result
(equal to torch on fresh random inputs) or a clear Python exception, and the function
still works afterwards.

Cases that can crash run in a child process (``run_isolated``): a segfault, an abort or a
hang fails that case, not the suite.  The child imports this module and runs the
``_case_*`` functions by name, printing a marker line per case; after a crash the next
child resumes with the following case, so one crash does not hide the others.

The child runner and the helpers shared with other test modules are tvmfast_isolation's (this
module re-exports them for test_fuzz.py and test_reliability.py).
"""
from __future__ import annotations

import functools
import gc
import operator
import os
import re
import sys

import numpy as np
import pytest
import tvm_ffi

import tvmfast

torch = pytest.importorskip("torch")

# The child-process machinery, the test kernels and the shared helpers live in tvmfast_isolation;
# they are imported here (and so stay importable from test_safety) for the modules that import
# them from this one.
from tvmfast_isolation import (  # noqa: E402,F401
    N,
    as_numpy,
    assert_all_ok,
    child_env,
    cpp,
    kernel,
    outcome,
    run_cases,
    run_isolated,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return child_env(tmp_path_factory)


def child_main(names: list[str]) -> None:
    run_cases(sys.modules[__name__], names)


# ---------------------------------------------------------------------------
# Helpers used in children and in-process
# ---------------------------------------------------------------------------


def nan_tensor(n: int = N) -> torch.Tensor:
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    return torch.full((n,), float("nan"))


def rand(n: int = N) -> torch.Tensor:
    return torch.randn(n)


def assert_add_works(f) -> None:
    """f (the 128-element add) gives torch's result on fresh random inputs."""
    a, b, out = rand(), rand(), nan_tensor()
    assert f(a, b, out) is None
    assert torch.equal(out, a + b), "the function no longer computes a + b"


def assert_clear_error(exc: BaseException, types, *patterns: str) -> None:
    assert isinstance(exc, types), f"expected {types}, got {type(exc).__name__}: {exc}"
    for pattern in patterns:
        assert re.search(pattern, str(exc), re.S), f"error message {str(exc)!r} does not match {pattern!r}"


class Junk:
    """Allocations of the sizes just freed, filled with a sentinel: memory that a stale
    pointer would now hit.  ``intact()`` tells whether anything wrote into them."""

    def __init__(self, sizes=(N,), count: int = 64):
        self.tensors = [torch.full((n,), 7.0) for n in sizes for _ in range(count)]

    def intact(self) -> bool:
        return all(bool((t == 7.0).all()) for t in self.tensors)


def valid_add_args(a, b, out) -> bool:
    """Would f(a, b, out) be a valid call of the 128-element add kernel now?"""
    for t in (a, b, out):
        if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32 and tuple(t.shape) == (N,)
                and t.is_contiguous() and t.data_ptr() % 64 == 0
                and t.untyped_storage().nbytes() >= 4 * (t.storage_offset() + N)):
            return False
    return True


def check_add_call_now(call, a, b, out, junk: Junk | None = None, must_succeed: bool = False) -> str:
    """call() should behave like f(a, b, out) with the objects as they are now: the sum in
    out's current storage, or (where the arguments are not valid now, or an implementation
    refuses changed storage) an exception.  Never a wrong result, never a write elsewhere."""
    valid = valid_add_args(a, b, out)
    if valid:
        out.fill_(float("nan"))
        expected = a + b
    kind, value = outcome(call)
    if junk is not None:
        assert junk.intact(), "the call wrote into memory that no argument owns now (freed storage reused)"
    if kind == "error":
        assert not (must_succeed and valid), f"valid call raised {type(value).__name__}: {value}"
        return "error"
    assert valid, f"call returned {value!r} for arguments the kernel must refuse"
    assert value is None
    assert torch.equal(out, expected), "wrong result: out (its current storage) != a + b"
    return "ok"


def bind_add(**kw):
    return tvmfast.bind(kernel("add"), **kw)


# ---------------------------------------------------------------------------
# (1) freeze keeps its own copy of the dict
# ---------------------------------------------------------------------------


def _case_freeze_survives_dict_clear_and_del():
    f = bind_add(num_args=3)
    w = rand()
    w_ref = w.clone()
    d = {1: w}
    g = f.freeze(d)
    d.clear()
    del w
    gc.collect()
    junk = Junk()
    for _ in range(3):
        x, out = rand(), nan_tensor()
        g(x, out)
        assert torch.equal(out, x + w_ref), "frozen argument read from freed memory"
    assert junk.intact()
    assert_add_works(f)


def _case_freeze_ignores_later_dict_changes():
    f = bind_add(num_args=3)
    w = rand()
    d = {1: w}
    g = f.freeze(d)
    d[1] = torch.zeros(N)
    d[0] = rand()
    x, out = rand(), nan_tensor()
    g(x, out)
    assert torch.equal(out, x + w), "freeze must use the values given at freeze(), not the dict's later ones"
    assert g.num_dynamic == 2


FREEZE_DICT_CASES = ["_case_freeze_survives_dict_clear_and_del", "_case_freeze_ignores_later_dict_changes"]


def test_freeze_keeps_its_own_copy_of_the_dict(env):
    assert_all_ok(run_isolated("test_safety", FREEZE_DICT_CASES, env=env))


# ---------------------------------------------------------------------------
# (2) frozen / prepared tensors whose storage changed: like f(*same_objects) now, or raise
# ---------------------------------------------------------------------------


def _mutate(t: torch.Tensor, how: str, keep: list) -> None:
    if how == "resize_big_then_back":
        t.resize_(1 << 20)
        t.resize_(N)
    elif how == "resize_0_then_back":
        t.resize_(0)
        t.resize_(N)
    elif how == "resize_smaller":
        t.resize_(N // 2)
    elif how == "resize_2d":
        t.resize_(2, N // 2)
    elif how == "set_fresh_storage":
        t.set_(rand())
    elif how == "set_offset_into_bigger_storage":
        t.set_(torch.randn(4096).untyped_storage(), 64, (N,))
    elif how == "set_shared_storage":
        other = rand()
        keep.append(other)
        t.set_(other)
    elif how == "data_assignment":
        t.data = rand()
    elif how == "swap_tensors":
        other = rand()
        torch.utils.swap_tensors(t, other)
        del other
    elif how == "storage_freed":
        t.untyped_storage().resize_(0)
    elif how == "dtype_change_via_data":
        t.data = torch.randn(N, dtype=torch.float64)
    else:
        raise AssertionError(how)


def _repair(t: torch.Tensor) -> None:
    """Back to a valid 128-element float32 tensor (new contents), whatever _mutate did."""
    if t.dtype != torch.float32:
        t.data = rand()
    if t.untyped_storage().nbytes() < 4 * (t.storage_offset() + t.numel()):
        t.untyped_storage().resize_(4 * (t.storage_offset() + max(t.numel(), N)))
    t.resize_(N)
    t.copy_(rand())


STORAGE_MUTATIONS = ["resize_big_then_back", "resize_0_then_back", "resize_smaller", "resize_2d",
                     "set_fresh_storage", "set_offset_into_bigger_storage", "set_shared_storage",
                     "data_assignment", "swap_tensors", "storage_freed", "dtype_change_via_data"]


def _case_storage_change(param: str):
    """param = form/position/mutation: the mutated tensor is frozen (or all are prepared)."""
    form, pos, how = param.split("/")
    pos = int(pos)
    f = bind_add(num_args=3)
    args = [rand(), rand(), nan_tensor()]
    if form == "prepared":
        frozen = f.prepare(*args)

        def call():
            return frozen()
    else:
        frozen = f.freeze({pos: args[pos]})

        def call():
            return frozen(*[args[i] for i in range(3) if i != pos])

    check_add_call_now(call, *args, must_succeed=True)
    keep: list = []
    _mutate(args[pos], how, keep)
    gc.collect()
    junk = Junk()
    seen = [check_add_call_now(call, *args, junk=junk)]
    _repair(args[pos])
    seen += [check_add_call_now(call, *args, junk=junk) for _ in range(2)]
    print(f"{param}: after the change {seen[0]}, after repair {seen[1:]}", flush=True)
    # the function itself, and a fresh freeze/prepare of the same objects, work
    assert_add_works(f)
    again = f.prepare(*args)
    check_add_call_now(lambda: again(), *args, must_succeed=True)
    check_add_call_now(lambda: f(*args), *args, must_succeed=True)


def _case_storage_change_del_original(form: str):
    f = bind_add(num_args=3)
    a, b, out = rand(), rand(), nan_tensor()
    a_ref, b_ref = a.clone(), b.clone()
    if form == "prepared":
        p = f.prepare(a, b, out)
        del a, b
    else:
        p = f.freeze({0: a, 1: b})
        del a, b
    gc.collect()
    junk = Junk()
    for _ in range(2):
        out.fill_(float("nan"))
        p() if form == "prepared" else p(out)
        assert torch.equal(out, a_ref + b_ref), "the call read freed storage"
    assert junk.intact()
    # the output deleted by the caller: still written somewhere owned (no crash, no stray write)
    if form == "prepared":
        del out
        gc.collect()
        junk = Junk()
        p()
        assert junk.intact(), "the call wrote into freed storage"
    assert_add_works(f)


STORAGE_CASES = ([f"_case_storage_change:{form}/{pos}/{how}"
                  for how in STORAGE_MUTATIONS for form in ("prepared", "frozen") for pos in (0, 2)]
                 + ["_case_storage_change_del_original:prepared", "_case_storage_change_del_original:frozen"])


def test_frozen_and_prepared_calls_see_storage_changes_or_raise(env):
    assert_all_ok(run_isolated("test_safety", STORAGE_CASES, env=env))


def test_frozen_and_prepared_see_in_place_updates(add_mod, gen):
    """copy_, mul_, fill_ and optimizer steps change contents in place: always seen."""
    f = tvmfast.bind(add_mod, num_args=3)
    a, b, out = torch.randn(N, generator=gen), torch.randn(N, generator=gen), nan_tensor()
    p = f.prepare(a, b, out)
    g = f.freeze({1: b})
    for update in (lambda: a.copy_(torch.randn(N, generator=gen)), lambda: b.mul_(-3.5),
                   lambda: b.uniform_(generator=gen), lambda: a.add_(1.25)):
        update()
        out.fill_(float("nan"))
        p()
        assert torch.equal(out, a + b)
        out.fill_(float("nan"))
        g(a, out)
        assert torch.equal(out, a + b)
    for make in (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                 lambda ps: torch.optim.Adam(ps, lr=0.05),
                 lambda ps: torch.optim.AdamW(ps, lr=0.05, foreach=False)):
        w = torch.randn(N, generator=gen, requires_grad=True)
        opt = make([w])
        wd = w.detach()
        p = f.prepare(wd, b, out)
        g = f.freeze({0: wd})
        for _ in range(3):
            loss = (w * torch.randn(N, generator=gen)).sum() + (w ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.fill_(float("nan"))
            p()
            assert torch.equal(out, wd + b)
            out.fill_(float("nan"))
            g(b, out)
            assert torch.equal(out, wd + b)


# ---------------------------------------------------------------------------
# (3) freeze keys: normalised with operator.index, checked, duplicates refused
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
    assert_all_ok(run_isolated("test_safety", FREEZE_KEY_CASES, env=env))


# ---------------------------------------------------------------------------
# (4) callees that retain their arguments get owned tensors; a call runs its callee once
# ---------------------------------------------------------------------------


def _three_forms(fn, *args):
    """Results of fn(*args) through a dynamic, a prepared and a frozen call."""
    f = tvmfast.bind(fn)
    yield "dynamic", f(*args)
    yield "prepared", f.prepare(*args)()
    g = tvmfast.bind(fn, num_args=len(args)).freeze({0: args[0]})
    yield "frozen", g(*args[1:])


def _case_ffi_array_keeps_tensor():
    make_array = tvm_ffi.get_global_func("ffi.Array")
    t, u = rand(37), rand(37)
    t_ref, u_ref = t.numpy().copy(), u.numpy().copy()
    arrays = dict(_three_forms(make_array, t, u))
    # the array's elements are read after the call, after the caller dropped the tensors:
    # they must be owned tensors (what tvm_ffi passes), keeping the memory alive
    del t, u
    gc.collect()
    junk = Junk(sizes=(37,))
    for form, arr in arrays.items():
        assert len(arr) == 2, form
        np.testing.assert_array_equal(as_numpy(arr[0]), t_ref, err_msg=form)
        np.testing.assert_array_equal(as_numpy(arr[1]), u_ref, err_msg=form)
    assert junk.intact()
    assert_add_works(bind_add())


def _case_python_callback_gets_a_usable_tensor():
    cb = tvm_ffi.convert(lambda t: np.from_dlpack(t).copy())
    t = rand(20)
    ref = t.numpy().copy()
    for form, r in _three_forms(cb, t):
        np.testing.assert_array_equal(as_numpy(r), ref, err_msg=form)


def _case_python_callback_keeps_its_argument():
    kept = []
    cb = tvm_ffi.convert(lambda t: kept.append(t))
    t = rand(20)
    ref = t.numpy().copy()
    f = tvmfast.bind(cb)
    assert f(t) is None
    f.prepare(t)()
    del t
    gc.collect()
    Junk(sizes=(20,))
    assert len(kept) == 2
    for x in kept:
        np.testing.assert_array_equal(as_numpy(x), ref)


def _relax_vm_pair():
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415
    from tvm.script import ir as I  # noqa: PLC0415
    from tvm.script import relax as R  # noqa: PLC0415

    @I.ir_module
    class Pair:
        @R.function
        def main(x: R.Tensor((16,), "float32"), y: R.Tensor((16,), "float32")):
            z = R.add(x, y)
            return (x, z)

    return relax.VirtualMachine(tvm.compile(Pair, target="llvm"), tvm.cpu())


def _case_relax_vm_result_tuple_holds_the_input():
    vm = _relax_vm_pair()
    f = tvmfast.bind(vm, "main")
    for form in ("dynamic", "prepared", "frozen"):
        x, y = rand(16), rand(16)
        x_ref, y_ref = x.clone(), y.clone()
        if form == "dynamic":
            r = f(x, y)
        elif form == "prepared":
            r = f.prepare(x, y)()
        else:
            r = tvmfast.bind(vm, "main", num_args=2).freeze({1: y})(x)
        del x, y
        gc.collect()
        Junk(sizes=(16,))
        assert len(r) == 2
        np.testing.assert_array_equal(as_numpy(r[0]), x_ref.numpy(), err_msg=form)
        np.testing.assert_allclose(as_numpy(r[1]), (x_ref + y_ref).numpy(), rtol=1e-6, err_msg=form)


class _Counted:
    def __init__(self, fail: bool):
        self.calls = 0
        self.fail = fail

    def __call__(self, t):
        self.calls += 1
        if self.fail:
            # What a C++ function taking ffi::Tensor says to a borrowed DLTensor*.
            raise TypeError("Mismatched type on argument #0 when calling: `f(0: Tensor)`, "
                            "expected Tensor but got DLTensor*")
        return np.from_dlpack(t).copy()


def _case_callee_runs_once_python(fail: str):
    counted = _Counted(fail == "failing")
    fn = tvm_ffi.convert(counted)
    t = rand(8)
    f = tvmfast.bind(fn)
    p = tvmfast.bind(fn).prepare(t)
    g = tvmfast.bind(fn, num_args=1).freeze({0: t})
    for form, call in (("dynamic", lambda: f(t)), ("prepared", p), ("frozen", g)):
        for i in range(3):  # the first call (where a function's needs may be found out) and later ones
            before = counted.calls
            kind, value = outcome(call)
            assert counted.calls == before + 1, f"{form} call #{i} ran the callee {counted.calls - before} times"
            if counted.fail:
                assert kind == "error"
                assert_clear_error(value, TypeError, "DLTensor")
            else:
                assert kind == "ok", value
                np.testing.assert_array_equal(as_numpy(value), t.numpy())


def _case_callee_runs_once_cpp():
    bump = cpp("bump_then_add_one")
    count = cpp("get_count")
    for form in ("dynamic", "prepared", "frozen"):
        f = tvmfast.bind(bump) if form != "frozen" else tvmfast.bind(bump, num_args=2)
        for i in range(3):
            x, y = rand(24), torch.full((24,), float("nan"))
            before = count()
            if form == "dynamic":
                kind, value = outcome(functools.partial(f, x, y))
            elif form == "prepared":
                kind, value = outcome(f.prepare(x, y))
            else:
                kind, value = outcome(functools.partial(f.freeze({1: y}), x))
            ran = count() - before
            assert ran == 1, f"{form} call #{i}: the C++ function ran {ran} times"
            # tvm_ffi passes owned tensors here: so must tvmfast (the function takes them)
            assert kind == "ok", f"{form} call #{i} raised {type(value).__name__}: {value}"
            assert torch.equal(y, x + 1)


RETAIN_CASES = ["_case_ffi_array_keeps_tensor", "_case_python_callback_gets_a_usable_tensor",
                "_case_python_callback_keeps_its_argument", "_case_relax_vm_result_tuple_holds_the_input",
                "_case_callee_runs_once_python:failing", "_case_callee_runs_once_python:working",
                "_case_callee_runs_once_cpp"]


def test_callees_that_retain_arguments_and_run_once(env):
    assert_all_ok(run_isolated("test_safety", RETAIN_CASES, env=env))


# ---------------------------------------------------------------------------
# (6) uninitialised objects: every entry point raises TypeError
# ---------------------------------------------------------------------------


def _uninit_bound():
    return tvmfast.BoundFunction.__new__(tvmfast.BoundFunction)


def _uninit_frozen():
    return tvmfast.FrozenFunction.__new__(tvmfast.FrozenFunction)


def _sub_bound():
    """An instance of a subclass whose __init__ skips the base one (None if subclassing is refused)."""
    try:
        class SubBound(tvmfast.BoundFunction):
            def __init__(self):  # never calls the base __init__
                pass
    except TypeError:
        return None
    return SubBound()


def _sub_bound_call(*args, prepare=False):
    sub = _sub_bound()
    if sub is None:
        raise TypeError("tvmfast: BoundFunction cannot be subclassed")
    return sub.prepare(*args)() if prepare else sub(*args)


def _uninit_entry_points():
    a, b, out = rand(), rand(), nan_tensor()
    return {
        "bound_call_noargs": lambda: _uninit_bound()(),
        "bound_call_args": lambda: _uninit_bound()(a, b, out),
        "bound_call_via_tuple": lambda: _uninit_bound().__call__(*(a, b, out)),
        "bound_prepare": lambda: _uninit_bound().prepare(a, b, out),
        "bound_prepare_then_call": lambda: _uninit_bound().prepare(a, b, out)(),
        "bound_prepare_empty": lambda: _uninit_bound().prepare()(),
        "bound_freeze": lambda: _uninit_bound().freeze({0: a}),
        "bound_freeze_empty": lambda: _uninit_bound().freeze({})(),
        "bound_as_torch_op": lambda: _uninit_bound().as_torch_op("tvmfast_issue9::uninit", mutates_args=(2,)),
        "subclass_call": lambda: _sub_bound_call(a, b, out),
        "subclass_prepare": lambda: _sub_bound_call(a, b, out, prepare=True),
        "frozen_call_noargs": lambda: _uninit_frozen()(),
        "frozen_call_args": lambda: _uninit_frozen()(a, b, out),
        "frozen_call_ptrs": lambda: _uninit_frozen().call_ptrs(a.data_ptr(), b.data_ptr(), out.data_ptr()),
        "frozen_call_ptrs_empty": lambda: _uninit_frozen().call_ptrs(),
        "frozen_num_tensor_args": lambda: _uninit_frozen().num_tensor_args(),
        "floor_loop": lambda: tvmfast._core._floor_loop(_uninit_frozen(), 10),
        "floor_loop_zero": lambda: tvmfast._core._floor_loop(_uninit_frozen(), 0),
    }


_BOUND_ATTRS = ["function", "num_args", "release_gil", "alignment", "owned_tensors"]
_FROZEN_ATTRS = ["bound", "num_args", "num_dynamic"]


def _case_uninit(name: str):
    if name == "repr_and_attributes":
        # repr and plain attributes may answer or raise TypeError; they must not crash,
        # and the object stays unusable (TypeError) afterwards.
        for obj, attrs in ((_uninit_bound(), _BOUND_ATTRS), (_uninit_frozen(), _FROZEN_ATTRS)):
            kind, r = outcome(functools.partial(repr, obj))
            assert kind == "ok" or isinstance(r, TypeError), r
            for attr in attrs:
                kind, r = outcome(functools.partial(getattr, obj, attr))
                assert kind == "ok" or isinstance(r, (TypeError, AttributeError)), (attr, r)
            if isinstance(obj, tvmfast.BoundFunction):
                kind, r = outcome(functools.partial(setattr, obj, "release_gil", True))
                assert kind == "ok" or isinstance(r, (TypeError, AttributeError)), r
            kind, r = outcome(obj)
            assert kind == "error"
            assert_clear_error(r, TypeError, "tvmfast|not initiali[sz]ed")
        return
    call = _uninit_entry_points()[name]
    kind, r = outcome(call)
    assert kind == "error", f"{name} returned {r!r}"
    assert_clear_error(r, TypeError, r"tvmfast|not initiali[sz]ed")


UNINIT_CASES = [f"_case_uninit:{n}" for n in list(_uninit_entry_points()) + ["repr_and_attributes"]]


def test_uninitialised_objects_raise_type_error(env):
    assert_all_ok(run_isolated("test_safety", UNINIT_CASES, env=env))


# Found while probing: __init__ called again on an initialised object (both classes are
# public and their __init__ is reachable).  Refused with TypeError, or the object is
# consistently the new one -- never a heap overflow, a stale count or a crash.


def _case_reinit_frozen(which: str):
    f = bind_add(num_args=3)
    a, b, out = rand(), rand(), nan_tensor()
    p = f.prepare(a, b, out)
    a2, b2, out2 = rand(), rand(), nan_tensor()
    new = {"prepared": {0: a2, 1: b2, 2: out2}, "partial": {0: a2}}[which]
    kind, err = outcome(functools.partial(p.__init__, f, new, 3))
    if kind == "error":
        assert_clear_error(err, TypeError)
        check_add_call_now(p, a, b, out, must_succeed=True)  # still the original
        assert p.num_tensor_args() == 3
    elif which == "prepared":
        check_add_call_now(p, a2, b2, out2, must_succeed=True)
        assert p.num_tensor_args() == 3
        x2, y2, o2 = rand(), rand(), nan_tensor()
        p.call_ptrs(x2.data_ptr(), y2.data_ptr(), o2.data_ptr())
        assert torch.equal(o2, x2 + y2)
    else:
        check_add_call_now(functools.partial(p, b2, out2), a2, b2, out2, must_succeed=True)
        kind, err = outcome(functools.partial(p.call_ptrs, a.data_ptr(), b.data_ptr(), out.data_ptr()))
        assert kind == "error", "call_ptrs on a function that is no longer prepared"
    for _ in range(3):  # re-initialised again and again: no growth of internal counts
        kind, _err = outcome(functools.partial(p.__init__, f, {0: a, 1: b, 2: out}, 3))
    if kind == "ok":
        check_add_call_now(p, a, b, out, must_succeed=True)
        assert p.num_tensor_args() == 3
    gc.collect()
    Junk()
    assert_add_works(f)


def _case_reinit_bound():
    """f re-initialised with another function while frozen/prepared functions of it are
    called from other threads (release_gil): no crash; f is then one function or the other."""
    import threading  # noqa: PLC0415

    add, echo = kernel("add"), tvm_ffi.get_global_func("testing.echo")
    f = tvmfast.bind(add, num_args=3, release_gil=True)
    a, b, out = rand(), rand(), nan_tensor()
    p = f.prepare(a, b, out)
    stop = threading.Event()
    errors = []

    def caller():
        while not stop.is_set():
            try:
                p()
            except Exception:  # noqa: BLE001  (another function now: its error is fine)
                pass
            except BaseException as e:  # noqa: B036
                errors.append(e)

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    refused = False
    for i in range(300):
        kind, err = outcome(functools.partial(f.__init__, echo if i % 2 == 0 else add, num_args=3, release_gil=True))
        if kind == "error":
            assert_clear_error(err, TypeError)
            refused = True
            break
        gc.collect(0)
    stop.set()
    for t in threads:
        t.join(60)
    assert errors == []
    if refused:
        assert_add_works(f)
        check_add_call_now(p, a, b, out, must_succeed=True)
    else:
        f.__init__(add, num_args=3)
        assert_add_works(f)


REINIT_CASES = ["_case_reinit_frozen:prepared", "_case_reinit_frozen:partial", "_case_reinit_bound"]


def test_reinitialising_objects_is_refused_or_consistent(env):
    assert_all_ok(run_isolated("test_safety", REINIT_CASES, env=env))


# ---------------------------------------------------------------------------
# (7) call_ptrs on a function that needs owned tensors
# ---------------------------------------------------------------------------


def _case_call_ptrs_owned(which: str):
    if which == "cpp":
        fn = cpp("add_one_owned")
    else:
        fn = tvm_ffi.convert(lambda x, y: np.copyto(np.from_dlpack(y), np.from_dlpack(x) + np.float32(1)))
    f = tvmfast.bind(fn)
    x, y = rand(32), torch.full((32,), float("nan"))
    p = f.prepare(x, y)
    for first in (True, False):
        x2, y2 = rand(32), torch.full((32,), float("nan"))
        kind, value = outcome(functools.partial(p.call_ptrs, x2.data_ptr(), y2.data_ptr()))
        if kind == "ok":
            assert value is None, f"call_ptrs returned {value!r}"
            assert torch.equal(y2, x2 + 1), "call_ptrs returned without computing"
        else:
            assert_clear_error(value, (TypeError, ValueError, RuntimeError), r"call_ptrs|tvmfast")
        # p itself still works (first=True: the first call of p happens after call_ptrs)
        y.fill_(float("nan"))
        assert p() is None
        assert torch.equal(y, x + 1), f"p() after call_ptrs (first={first})"
        y.fill_(float("nan"))
        assert f(x, y) is None
        assert torch.equal(y, x + 1)


CALL_PTRS_CASES = ["_case_call_ptrs_owned:cpp", "_case_call_ptrs_owned:python"]


def test_call_ptrs_on_owned_tensor_callee(env):
    assert_all_ok(run_isolated("test_safety", CALL_PTRS_CASES, env=env))


# ---------------------------------------------------------------------------
# (8) strings with NUL characters arrive whole
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


# ---------------------------------------------------------------------------
# (9) negative and conjugate views: resolved or refused, never silently wrong
# ---------------------------------------------------------------------------


def _arg_named(err: BaseException, pos: int) -> None:
    assert re.search(rf"(argument|arg|#)\s*#?{pos}\b", str(err)), f"error does not name argument {pos}: {err}"


def _neg_view_check(call, pos: int, expected_fn, out) -> None:
    out.fill_(float("nan"))
    kind, value = outcome(call)
    if kind == "error":
        assert_clear_error(value, (TypeError, ValueError, RuntimeError), r"tvmfast|neg|conj")
        _arg_named(value, pos)
    else:
        assert torch.equal(out, expected_fn()), "negative view passed as if the bit were not set"


@pytest.mark.parametrize("pos", [0, 1])
def test_neg_view_input_resolved_or_refused(add_mod, gen, pos):
    f = tvmfast.bind(add_mod, num_args=3)
    a, b, out = torch.randn(N, generator=gen), torch.randn(N, generator=gen), nan_tensor()
    args = [a, b]
    args[pos] = torch._neg_view(args[pos])
    assert args[pos].is_neg()
    _neg_view_check(lambda: f(*args, out), pos, lambda: args[0] + args[1], out)
    _neg_view_check(lambda: f.prepare(*args, out)(), pos, lambda: args[0] + args[1], out)
    g = f.freeze({pos: args[pos]})
    _neg_view_check(lambda: g(args[1 - pos], out), pos, lambda: args[0] + args[1], out)
    # the bit is a property of the view: the base tensor still works
    out.fill_(float("nan"))
    f(a, b, out)
    assert torch.equal(out, a + b)


def test_neg_view_output_resolved_or_refused(add_mod, gen):
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(N, generator=gen), torch.randn(N, generator=gen)
    base = torch.full((N,), float("nan"))
    out = torch._neg_view(base)
    kind, value = outcome(lambda: f(a, b, out))
    if kind == "error":
        assert_clear_error(value, (TypeError, ValueError, RuntimeError), r"tvmfast|neg|conj")
        _arg_named(value, 2)
    else:
        # the view reads a + b (so the memory holds -(a + b))
        assert torch.equal(out, a + b), "written through a negative view as if the bit were not set"


def _case_conj_view():
    """Through a Python callback (which needs owned tensors): a child, as callbacks crashed."""
    copy_back = tvm_ffi.convert(lambda t: np.from_dlpack(t).copy())
    z = torch.randn(12, dtype=torch.complex64)
    zc = z.conj()
    assert zc.is_conj()
    f = tvmfast.bind(copy_back)
    for call in (lambda: f(zc), lambda: f.prepare(zc)()):
        kind, value = outcome(call)
        if kind == "error":
            assert_clear_error(value, (TypeError, ValueError, RuntimeError, BufferError), r"conj")
            _arg_named(value, 0)
        else:
            np.testing.assert_array_equal(as_numpy(value), zc.resolve_conj().numpy())
    assert np.array_equal(as_numpy(f(z)), z.numpy())


def test_conj_view_resolved_or_refused(env):
    assert_all_ok(run_isolated("test_safety", ["_case_conj_view"], env=env))


def _case_neg_view_exchange_api():
    """The same through torch's DLPack C exchange API (TVMFAST_TORCH_DIRECT=0)."""
    assert os.environ.get("TVMFAST_TORCH_DIRECT") == "0"
    f = bind_add(num_args=3)
    a, b, out = rand(), rand(), nan_tensor()
    nb = torch._neg_view(b)
    _neg_view_check(lambda: f(a, nb, out), 1, lambda: a + nb, out)
    _neg_view_check(lambda: f.prepare(a, nb, out)(), 1, lambda: a + nb, out)
    assert_add_works(f)


def test_neg_view_through_exchange_api(env):
    env = dict(env, TVMFAST_TORCH_DIRECT="0")
    assert_all_ok(run_isolated("test_safety", ["_case_neg_view_exchange_api"], env=env))


# ---------------------------------------------------------------------------
# (10) exporters whose capsule has the wrong name
# ---------------------------------------------------------------------------


def _capsule(name: bytes, pointer: int | None = None):
    """A PyCapsule named ``name`` (no destructor) around a zeroed buffer kept alive here."""
    import ctypes  # noqa: PLC0415

    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    if pointer is None:
        buf = ctypes.create_string_buffer(512)
        _capsule_keep.append(buf)
        pointer = ctypes.addressof(buf)
    _capsule_keep.append(name)
    return new(pointer, name, None)


_capsule_keep: list = []


def _exporter(kind: str):
    """An object exporting a tensor badly: ``__dlpack__`` returning a capsule with a wrong
    name, or a type whose ``__dlpack_c_exchange_api__`` is a wrongly named capsule."""
    if kind.startswith("dlpack_"):
        name = {"dlpack_wrong_name": b"not_a_dltensor", "dlpack_used": b"used_dltensor",
                "dlpack_used_versioned": b"used_dltensor_versioned"}[kind]
        cap = _capsule(name)

        class BadDLPack:
            def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
                return cap

            def __dlpack_device__(self):
                return (1, 0)

        return BadDLPack()
    if kind == "api_wrong_name":
        api = _capsule(b"not_the_exchange_api")
    elif kind == "api_not_a_capsule":
        api = 12345
    else:
        raise AssertionError(kind)

    class BadApi:
        __dlpack_c_exchange_api__ = api

    return BadApi()


def _case_bad_exporter(kind: str):
    f = bind_add(num_args=3)
    for pos in (1, 2):
        args = [rand(), rand(), nan_tensor()]
        args[pos] = _exporter(kind)
        kind_, err = outcome(functools.partial(f, *args))
        assert kind_ == "error", f"call with a bad exporter returned {err!r}"
        # TypeError from tvmfast's capsule check; ValueError (the type rt_mod raises) from
        # tvm_ffi's importer, wrapped with the argument's position.
        assert_clear_error(err, (TypeError, ValueError), r"tvmfast|capsule|dlpack|DLPack")
        _arg_named(err, pos)
        assert_add_works(f)
        kind_, err = outcome(functools.partial(lambda xs: f.prepare(*xs)(), args))
        assert kind_ == "error"
        assert_clear_error(err, (TypeError, ValueError))
        _arg_named(err, pos)
    assert_add_works(f)


EXPORTER_CASES = [f"_case_bad_exporter:{k}" for k in
                  ("dlpack_wrong_name", "dlpack_used", "dlpack_used_versioned", "api_wrong_name",
                   "api_not_a_capsule")]


def test_exporter_with_wrong_capsule_name(env):
    assert_all_ok(run_isolated("test_safety", EXPORTER_CASES, env=env))
