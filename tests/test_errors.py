"""Errors: a clear Python exception, never a crash, and the function works right after.  Bad
arguments raise an exception naming the argument (where TVM's own checks refuse them: rt_mod's
exception type and message exactly); errors raised inside the callee or by a DLPack producer come
out as through rt_mod; ``__dlpack__`` and exchange-API capsules with the wrong name are refused;
every entry point of an uninitialised BoundFunction or FrozenFunction raises TypeError, and
re-initialising one is refused or leaves it consistently the new one.

Cases that can crash run in a child process (support.isolation.run_isolated).
"""
from __future__ import annotations

import functools
import gc
import sys

import pytest
import tvm_ffi

import tvmfast
from support.helpers import arg_named, assert_clear_error, nan_like
from support.isolation import assert_all_ok, child_env, kernel, outcome, run_cases, run_isolated

torch = pytest.importorskip("torch")

from support.add_checks import Junk, assert_add_works, bind_add, check_add_call_now, nan_tensor, rand  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return child_env(tmp_path_factory)


def child_main(names: list[str]) -> None:
    run_cases(sys.modules[__name__], names)


# ---------------------------------------------------------------------------
# Bad arguments: a clear error naming the argument, then the function works
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Errors raised by the callee or by a DLPack producer: as through rt_mod
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Capsules with the wrong name
# ---------------------------------------------------------------------------


def test_misnamed_exchange_capsule_raises_tvm_ffis_type():
    import ctypes  # noqa: PLC0415

    capsule = ctypes.pythonapi.PyCapsule_New
    capsule.restype = ctypes.py_object
    capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

    class Misnamed:
        __dlpack_c_exchange_api__ = capsule(ctypes.addressof(ctypes.c_int(1)), b"not_the_name", None)

        def __dlpack__(self, **kwargs):
            return torch.zeros(4).__dlpack__(**kwargs)

    fn = tvm_ffi.get_global_func("testing.echo")
    with pytest.raises(Exception) as theirs:
        fn(Misnamed())
    with pytest.raises(Exception) as ours:
        tvmfast.bind(fn)(Misnamed())
    assert type(ours.value) is type(theirs.value) is ValueError
    assert str(ours.value).startswith("tvmfast: argument #0: ")


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
        arg_named(err, pos)
        assert_add_works(f)
        kind_, err = outcome(functools.partial(lambda xs: f.prepare(*xs)(), args))
        assert kind_ == "error"
        assert_clear_error(err, (TypeError, ValueError))
        arg_named(err, pos)
    assert_add_works(f)


EXPORTER_CASES = [f"_case_bad_exporter:{k}" for k in
                  ("dlpack_wrong_name", "dlpack_used", "dlpack_used_versioned", "api_wrong_name",
                   "api_not_a_capsule")]


def test_exporter_with_wrong_capsule_name(env):
    assert_all_ok(run_isolated("test_errors", EXPORTER_CASES, env=env))


# ---------------------------------------------------------------------------
# Uninitialised objects: every entry point raises TypeError
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
        "bound_as_torch_op": lambda: _uninit_bound().as_torch_op("tvmfast_test_errors::uninit", mutates_args=(2,)),
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
    assert_all_ok(run_isolated("test_errors", UNINIT_CASES, env=env))


# __init__ called again on an initialised object (both classes are public and their __init__ is
# reachable): refused with TypeError, or the object is consistently the new one -- never a heap
# overflow, a stale count or a crash.


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
    assert_all_ok(run_isolated("test_errors", REINIT_CASES, env=env))
