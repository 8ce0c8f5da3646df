"""bind() and what a bound function says about itself: the forms bind takes (a module, a module and
a name, a function, a library path, a loaded library), what it refuses and the hints it gives, its
signature and type hints, the arity learned from a first call or from num_args, the repr, and
pickling by rebinding a library path."""
import inspect
import os
import sys
import typing

import pytest
import tvm_ffi

import tvmfast
from support import tvm_kernels as kernels
from support.helpers import nan_like, needs_tvm

try:
    import torch
except ImportError:  # the tests that use it skip (needs_torch)
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


@needs_torch
def test_bind_forms(add_mod, tmp_path, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    lib = str(tmp_path / "add.so")
    add_mod.export_library(lib)
    forms = [tvmfast.bind(add_mod), tvmfast.bind(add_mod, "main"), tvmfast.bind(add_mod["main"]),
             tvmfast.bind(lib), tvmfast.bind(os.path.relpath(lib)),
             tvmfast.bind(tvm_ffi.load_module(lib))]
    for f in forms:
        out = nan_like(a)
        f(a, b, out)
        assert torch.equal(out, a + b)


@needs_torch
def test_bind_unknown_name(add_mod):
    with pytest.raises(AttributeError, match="no function named 'nope'"):
        tvmfast.bind(add_mod, "nope")
    with pytest.raises(FileNotFoundError, match="no such library"):
        tvmfast.bind("/nonexistent/lib.so")
    with pytest.raises(TypeError, match="expected a TVM runtime module"):
        tvmfast.bind(42)
    with pytest.raises(TypeError, match="name= is only for modules"):
        tvmfast.bind(add_mod["main"], "main")


@needs_torch
def test_a_missing_function_error_lists_the_modules_functions(add_mod, tmp_path):
    """A module without the name (or without ``main``): the error names the functions it has where
    they can be listed (a module TVM built, a library file), says so where they cannot (a library
    already loaded), and how to bind one by name."""
    with pytest.raises(AttributeError) as info:
        tvmfast.bind(add_mod, "nope")
    assert str(info.value) == ("tvmfast.bind: the module has no function named 'nope'; it has 'main': "
                               "bind one by name, bind(mod, 'main')")
    two = _two_function_module(tmp_path)
    with pytest.raises(AttributeError, match=r"no function named 'main'; it has 'add_three', 'add_two': "
                                             r"bind one by name, bind\(mod, 'add_three'\)"):
        tvmfast.bind(two)
    lib = str(tmp_path / "two.so")
    two.export_library(lib)
    with pytest.raises(AttributeError, match=r"no function named 'main'; it has 'add_three', 'add_two'"):
        tvmfast.bind(lib)  # the library file lists the functions it exports
    with pytest.raises(AttributeError, match=r"no function named 'main'\. tvm_ffi cannot list the functions of a "
                                             r"loaded library .*nm -D.*bind\(mod, \"name\"\)"):
        tvmfast.bind(tvm_ffi.load_module(lib))
    assert tvmfast.bind(lib, "add_two").alignment == 64


TWO_FUNCTIONS = '''
from tvm.script import ir as I
from tvm.script import tirx as T


@I.ir_module
class Two:
    @T.prim_func
    def add_two(a: T.handle, b: T.handle):
        T.func_attr({"tir.noalias": True})
        A = T.match_buffer(a, (8,), "float32")
        B = T.match_buffer(b, (8,), "float32")
        for i in range(8):
            B[i] = A[i] + T.float32(2)

    @T.prim_func
    def add_three(a: T.handle, b: T.handle):
        T.func_attr({"tir.noalias": True})
        A = T.match_buffer(a, (8,), "float32")
        B = T.match_buffer(b, (8,), "float32")
        for i in range(8):
            B[i] = A[i] + T.float32(3)
'''


def _two_function_module(folder):
    """A module TVM built with two functions, neither of them ``main`` (TVMScript needs a file)."""
    import importlib.util

    tvm = pytest.importorskip("tvm")
    if not hasattr(tvm, "tirx"):
        pytest.skip("this apache-tvm has no tvm.tirx (TVMScript of apache-tvm >= 0.27)")
    path = folder / "two_functions.py"
    path.write_text(TWO_FUNCTIONS)
    spec = importlib.util.spec_from_file_location("tvmfast_two_functions", path)
    source = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = source  # TVMScript finds a class's source through its module
    try:
        spec.loader.exec_module(source)
    finally:
        del sys.modules[spec.name]
    return tvm.tirx.build(source.Two, target="llvm")


@needs_torch
def test_copies_are_new_bound_functions_of_the_same_function(add_mod, gen):
    import copy

    f = tvmfast.bind(add_mod, num_args=3, release_gil=False)
    for g in (copy.copy(f), copy.deepcopy(f), copy.deepcopy([f])[0]):
        assert type(g) is tvmfast.BoundFunction and g is not f and g.function is f.function
        assert (g.num_args, g.release_gil, g.alignment) == (3, False, 64)
        a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
        out = nan_like(a)
        g(a, b, out)
        assert torch.equal(out, a + b)
        g.release_gil = True  # options are the copy's own
        assert f.release_gil is False
    learned = tvmfast.bind(add_mod)
    learned(a, b, out)
    assert copy.copy(learned).num_args == 3  # what a call taught is kept
    with pytest.raises(TypeError, match="not initialized"):
        copy.copy(tvmfast.BoundFunction.__new__(tvmfast.BoundFunction))


def test_bind_of_a_python_function_says_how_to_wrap_it():
    def plus_one(x):
        return x + 1

    with pytest.raises(TypeError, match=r"tvm_ffi.convert\(fn\)"):
        tvmfast.bind(plus_one)
    wrapped = tvmfast.bind(tvm_ffi.convert(plus_one))  # the fix the message gives
    assert wrapped(41) == 42


@needs_torch
def test_not_callable_gets_no_wrapping_hint():
    with pytest.raises(TypeError) as info:
        tvmfast.bind(42)
    assert "tvm_ffi.convert" not in str(info.value)


def test_bind_signature_and_type_hints():
    sig = inspect.signature(tvmfast.bind)
    assert str(sig).replace("'", "").startswith("(obj: Any, name: str | None = None, *, num_args: int | None = None, "
                                                "release_gil: bool | None = None, alignment: int | None = None)")
    hints = typing.get_type_hints(tvmfast.bind)
    assert hints["return"] is tvmfast.BoundFunction
    assert hints["num_args"] == int | None and hints["release_gil"] == bool | None
    assert "tvm_ffi.convert" in tvmfast.bind.__doc__ and "__tvm_ffi_object__" in tvmfast.bind.__doc__


@needs_torch
def test_arity_is_known_from_a_first_call_or_num_args(add_mod):
    f = tvmfast.bind(add_mod)
    assert f.arity is None
    a = torch.randn(128)
    f(a, a, torch.empty(128))
    assert f.arity == 3
    assert tvmfast.bind(add_mod, num_args=3).arity == 3


@needs_torch
def test_num_args_and_repr_after_the_arity_is_learned(add_mod):
    f = tvmfast.bind(add_mod)
    assert f.num_args is None and f.arity is None
    assert "num_args=None" in repr(f)
    a = torch.randn(128)
    f(a, a, torch.empty(128))
    assert f.num_args == f.arity == 3
    assert "num_args=3" in repr(f)
    assert tvmfast.bind(add_mod, num_args=3).num_args == 3


@needs_torch
@needs_tvm
def test_bound_functions_pickle_by_rebinding_a_library_path(tmp_path, gen):
    import pickle

    import tvm_ffi

    path = tmp_path / "add.so"
    kernels.build_add(128).export_library(str(path))
    f = tvmfast.bind(str(path), num_args=3, release_gil=True)
    g = pickle.loads(pickle.dumps(f))
    assert (g.num_args, g.release_gil, g.alignment) == (3, True, 64)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = torch.full((128,), float("nan"))
    g(a, b, out)
    assert torch.equal(out, a + b)
    with pytest.raises(TypeError, match=r"tvmfast.BoundFunction: cannot be pickled.*export_library"):
        pickle.dumps(tvmfast.bind(tvm_ffi.get_global_func("testing.echo")))
    with pytest.raises(TypeError, match=r"tvmfast.FrozenFunction: cannot be pickled"):
        pickle.dumps(f.prepare(a, b, out))
    import copy
    for make_copy in (copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match=r"tvmfast.FrozenFunction: cannot be copied.*f.bound"):
            make_copy(f.prepare(a, b, out))


@needs_torch
@needs_tvm
def test_bind_takes_what_tvm_compile_returns(tmp_path, gen):
    """tvm.compile gives an Executable (ex(*args) calls its jitted module's main): bind takes it as it
    is, binds that function (a TVM kernel: 64-byte alignment assumed) and gives the same results and
    errors as ex(*args)."""
    import tvm
    src = tmp_path / "add_kernel_src.py"
    src.write_text(
        "from tvm.script import tirx as T\n"
        "@T.prim_func\n"
        "def main(a: T.handle, b: T.handle, c: T.handle):\n"
        "    T.func_attr({'global_symbol': 'main', 'tir.noalias': True})\n"
        "    A = T.match_buffer(a, (128,), 'float32')\n"
        "    B = T.match_buffer(b, (128,), 'float32')\n"
        "    C = T.match_buffer(c, (128,), 'float32')\n"
        "    for i in range(128):\n"
        "        C[i] = A[i] + B[i]\n")
    import importlib.util
    spec = importlib.util.spec_from_file_location("add_kernel_src", src)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ex = tvm.compile(module.main, target="llvm")
    assert type(ex).__name__ == "Executable"
    for f in (tvmfast.bind(ex), tvmfast.bind(ex, "main")):
        a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
        out, ref = nan_like(a), nan_like(a)
        f(a, b, out)
        ex(a, b, ref)
        assert torch.equal(out, ref) and torch.equal(out, a + b)
        assert f.alignment == 64
        with pytest.raises(ValueError) as got:
            f(a, b, torch.empty(64))
        with pytest.raises(ValueError) as want:
            ex(a, b, torch.empty(64))
        assert str(got.value) == str(want.value)
    with pytest.raises(AttributeError, match="no function named 'nope'"):
        tvmfast.bind(ex, "nope")
