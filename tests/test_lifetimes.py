"""Who owns what, and for how long.  freeze() keeps its own copy of the dict; a frozen or prepared
call is ``f(*same_objects)`` made now, whatever happened to its tensors since (resize_, set_,
.data, swap_tensors, a freed storage, the caller's del, in-place updates, optimizer steps): the
result in their current storage, or an exception -- never a read or a write of freed memory;
callees that keep their arguments (an ffi.Array, a Python callback, a Relax VM's result tuple)
get owned tensors that keep the memory alive, and every call runs its callee exactly once;
call_ptrs on a callee that needs owned tensors computes or raises, never returns without
computing.

Cases that can crash run in a child process (support.isolation.run_isolated).
"""
from __future__ import annotations

import functools
import gc
import sys

import numpy as np
import pytest
import tvm_ffi

import tvmfast
from support.helpers import assert_clear_error
from support.isolation import N, as_numpy, assert_all_ok, child_env, cpp, outcome, run_cases, run_isolated

torch = pytest.importorskip("torch")

from support.add_checks import (  # noqa: E402
    Junk,
    assert_add_works,
    bind_add,
    check_add_call_now,
    nan_tensor,
    rand,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return child_env(tmp_path_factory)


def child_main(names: list[str]) -> None:
    run_cases(sys.modules[__name__], names)


# ---------------------------------------------------------------------------
# freeze keeps its own copy of the dict
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
    assert_all_ok(run_isolated("test_lifetimes", FREEZE_DICT_CASES, env=env))


# ---------------------------------------------------------------------------
# frozen / prepared tensors whose storage changed: like f(*same_objects) now, or raise
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
    assert_all_ok(run_isolated("test_lifetimes", STORAGE_CASES, env=env))


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
# callees that retain their arguments get owned tensors; a call runs its callee once
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
    assert_all_ok(run_isolated("test_lifetimes", RETAIN_CASES, env=env))


# ---------------------------------------------------------------------------
# call_ptrs on a function that needs owned tensors
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
    assert_all_ok(run_isolated("test_lifetimes", CALL_PTRS_CASES, env=env))
