"""Routing for the vendored compatibility tests: every function a test obtains goes through
``tvmfast.bind`` in "bind" mode, and is left as it is in "direct" mode.

What is routed in bind mode (see ``route_through_bind``):

* ``tvm_ffi.get_global_func(name)`` (also the name imported by ``tvm_ffi.testing``'s helpers,
  e.g. ``tvm_ffi.testing.add_one``) returns ``tvmfast.bind(func)``;
* ``module.name`` (also when tvm_ffi cached the function on the module), ``module["name"]``,
  ``module.get_function(name)`` and ``module(...)`` on any
  ``tvm_ffi.Module`` (so also TVM's ``tvm.runtime.Module`` and ``tvm.compile``'s ``Executable``,
  and modules from ``tvm_ffi.cpp.load_inline`` / ``tvm_ffi.load_module``) return
  ``tvmfast.bind(module, name)``: the way a user binds a module's function, with the module
  defaults (e.g. the alignment a compiled kernel may assume);
* the ``tvm_ffi.Function`` attributes of ``tvm_ffi.testing`` and the test module's own
  module-level ``tvm_ffi.Function`` globals (e.g. ``_fecho = tvm_ffi.get_global_func(...)``).

Not routed: functions made from Python callables (``tvm_ffi.convert(lambda ...)``,
``tvm_ffi.convert_func``, ``register_global_func``) and functions that FFI calls return;
``tests/test_compat_table.py`` covers bind over Python-callback functions.
"""
from __future__ import annotations

import contextlib

import tvm_ffi
import tvm_ffi.testing

import tvmfast

try:  # the module of tvm_ffi.testing's Python helpers (e.g. add_one), which imports get_global_func
    import tvm_ffi.testing.testing as _testing_helpers
except ImportError:  # older apache-tvm-ffi
    _testing_helpers = None

MODE = "direct"


def bind_mode() -> bool:
    """True while a test runs with its functions routed through tvmfast.bind."""
    return MODE == "bind"


def direct_mode() -> bool:
    """True in direct mode: the vendored tests guard checks about the function object with it
    (isinstance tvm_ffi.Function, same_as, passing the function itself to another FFI function),
    which are not about what a call does."""
    return MODE == "direct"


_orig_get_global_func = tvm_ffi.registry.get_global_func
_orig_module_get_function = tvm_ffi.Module.get_function
_binding_module = 0  # > 0 while tvmfast.bind resolves a module function (it calls get_function)


def _routed_get_global_func(name, allow_missing=False):
    func = _orig_get_global_func(name, allow_missing)
    return None if func is None else tvmfast.bind(func)


def _bind_module_function(module, name, query_imports):
    """tvmfast.bind(module, name) once the module has the function (else the module's own error)."""
    global _binding_module
    func = _orig_module_get_function(module, name, query_imports)
    if _binding_module:
        return func
    _binding_module += 1
    try:
        # bind() resolves the name itself (through get_function, which is this function
        # again: _binding_module makes that inner call return the plain function).
        return tvmfast.bind(module, name)
    finally:
        _binding_module -= 1


@contextlib.contextmanager
def unrouted():
    """Module methods as tvm_ffi has them, inside (for a test calling tvmfast.bind(module) itself)."""
    global _binding_module
    _binding_module += 1
    try:
        yield
    finally:
        _binding_module -= 1


def _routed_get_function(self, name, query_imports=False):
    return _bind_module_function(self, name, query_imports)


def _routed_getattr(self, name):
    # tvm_ffi.Module.__getattr__ (which also caches the function on the module: not done here,
    # so a module shared between modes never hands a bind-mode test a plain function).
    try:
        return _bind_module_function(self, name, False)
    except AttributeError as exc:
        raise AttributeError(f"Module has no function '{name}'") from exc


_orig_module_getattribute = tvm_ffi.Module.__getattribute__


def _routed_getattribute(self, name):
    # A function that tvm_ffi.Module.__getattr__ cached on the instance in direct mode (e.g. a
    # module shared between tests) is bound like any other.
    value = _orig_module_getattribute(self, name)
    if isinstance(value, tvm_ffi.Function) and not name.startswith("__"):
        if _orig_module_getattribute(self, "__dict__").get(name) is value:
            return _bind_module_function(self, name, False)
    return value


def _routed_getitem(self, name):
    if not isinstance(name, str):
        raise ValueError("Can only take string as function name")
    return _bind_module_function(self, name, False)


def route_through_bind(monkeypatch, test_module) -> None:
    """Install the bind-mode routing for one test (monkeypatch undoes it afterwards)."""
    monkeypatch.setattr(tvm_ffi, "get_global_func", _routed_get_global_func)
    if _testing_helpers is not None and hasattr(_testing_helpers, "get_global_func"):
        monkeypatch.setattr(_testing_helpers, "get_global_func", _routed_get_global_func)
    monkeypatch.setattr(tvm_ffi.Module, "get_function", _routed_get_function)
    monkeypatch.setattr(tvm_ffi.Module, "__getattr__", _routed_getattr)
    monkeypatch.setattr(tvm_ffi.Module, "__getattribute__", _routed_getattribute)
    monkeypatch.setattr(tvm_ffi.Module, "__getitem__", _routed_getitem)
    namespaces = [tvm_ffi.testing, getattr(tvm_ffi.testing, "_ffi_api", None), test_module]
    for namespace in filter(None, namespaces):
        for attr, value in list(vars(namespace).items()):
            if isinstance(value, tvm_ffi.Function):
                monkeypatch.setattr(namespace, attr, tvmfast.bind(value))
