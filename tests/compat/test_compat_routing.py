"""The harness itself: in bind mode the functions a test obtains really are tvmfast's, in direct
mode they are tvm_ffi's own (so a vendored test passing in both modes means something)."""
import pytest
import tvm_ffi
import tvm_ffi.testing
import tvmfast_compat

import tvmfast


def _expected_type():
    return tvmfast.BoundFunction if tvmfast_compat.bind_mode() else tvm_ffi.Function


def test_global_functions_are_routed(call_mode):
    assert tvmfast_compat.MODE == call_mode
    echo = tvm_ffi.get_global_func("testing.echo")
    assert type(echo) is _expected_type()
    assert echo(5) == 5
    assert tvm_ffi.get_global_func("testing.no_such_function", allow_missing=True) is None


def test_testing_namespace_is_routed():
    assert type(tvm_ffi.testing.echo) is _expected_type()
    assert tvm_ffi.testing.add_one(1) == 2


def test_module_functions_are_bound_as_module_functions():
    pytest.importorskip("tvm")
    from support import tvm_kernels as kernels

    rt_mod = kernels.build_add(128, "float32")  # one module for both modes (kernels caches it)
    for func in (rt_mod.main, rt_mod["main"], rt_mod.get_function("main")):
        assert type(func) is _expected_type()
        if tvmfast_compat.bind_mode():
            # bind(module, name), with a module function's defaults (not those of a bare Function).
            with tvmfast_compat.unrouted():
                assert repr(func) == repr(tvmfast.bind(rt_mod, "main"))
