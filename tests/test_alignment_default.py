"""bind's default alignment is the function's, not the lookup's: a kernel TVM compiled assumes 64-byte
aligned data however it is looked up (bind(mod), bind(mod, "main"), bind(mod.main), bind(mod["main"]),
a library path, a loaded library), and a C++ function (tvm_ffi.cpp.load_inline, build_inline) assumes
none, so overlapping misaligned views run through every lookup, as through the function itself.
Also: what tvmfast reads of a library file (the libraries it needs, the functions it exports), and
that a process whose first bind is a bare function (no module bound before) decides the same."""
import json
import os
import subprocess
import sys

import pytest
import tvm_ffi

import tvmfast
from support import isolation
from support import tvm_kernels as kernels
from support.cpp_sources import WORKER_FUNCTIONS
from support.helpers import needs_tvm

torch = pytest.importorskip("torch")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def cpp_library(tmp_path_factory):
    """(the path of the C++ test library, the module loaded from it, a load_inline module of it)."""
    try:
        env = isolation.WORKER_CPP.env(tmp_path_factory)
    except Exception as exc:  # no C++ toolchain
        pytest.skip(f"tvm_ffi.cpp.build_inline failed here: {type(exc).__name__}: {exc}")
    path = json.loads(env[isolation.WORKER_CPP.env_var])["cpp"]
    from tvm_ffi import cpp as ffi_cpp

    inline = ffi_cpp.load_inline(isolation.WORKER_CPP.name, cpp_sources=isolation.WORKER_CPP.source,
                                 functions=isolation.WORKER_CPP.functions)
    return path, tvm_ffi.load_module(path), inline


@pytest.fixture(scope="module")
def tvm_library(add_mod, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("exported") / "add.so")
    add_mod.export_library(path)
    return path


def _lookups(module, name, path=None):
    """Every way to bind module's function ``name``."""
    forms = {"bind(mod, name)": lambda: tvmfast.bind(module, name), "bind(mod.name)": lambda: tvmfast.bind(
        getattr(module, name)), "bind(mod[name])": lambda: tvmfast.bind(module[name]),
             "bind(mod.get_function(name))": lambda: tvmfast.bind(module.get_function(name))}
    if name == "main":
        forms["bind(mod)"] = lambda: tvmfast.bind(module)
    if path is not None:
        forms["bind(path, name)"] = lambda: tvmfast.bind(path, name)
    return {form: make() for form, make in forms.items()}


@needs_tvm
def test_a_tvm_kernel_assumes_64_byte_alignment_however_looked_up(add_mod, tvm_library):
    for module, path in ((add_mod, None), (tvm_ffi.load_module(tvm_library), tvm_library)):
        bound = _lookups(module, "main", path)
        assert {form: f.alignment for form, f in bound.items()} == dict.fromkeys(bound, 64), module.kind
    assert tvmfast.bind(tvm_library).alignment == 64
    assert tvmfast.bind(add_mod.main, alignment=1).alignment == 1  # explicit: as given


def test_a_cpp_function_assumes_no_alignment_however_looked_up(cpp_library):
    path, loaded, inline = cpp_library
    for module, module_path in ((inline, None), (loaded, path)):
        bound = _lookups(module, "add_one", module_path)
        assert {form: f.alignment for form, f in bound.items()} == dict.fromkeys(bound, 1), module.kind
    assert tvmfast.bind(inline, "add_one", alignment=64).alignment == 64  # explicit: as given


def test_overlapping_misaligned_views_run_through_every_lookup_of_a_cpp_function(cpp_library):
    """They reach the function as they are (it takes any address); an aligned copy of views that
    overlap would not be exact, which is why a function that assumes alignment refuses them."""
    _, _, inline = cpp_library
    expected = torch.arange(20, dtype=torch.float32)
    inline.add_one(expected[1:17], expected[2:18])  # the function itself: y[i] = x[i] + 1, in order
    for form, f in _lookups(inline, "add_one").items():
        base = torch.arange(20, dtype=torch.float32)
        f(base[1:17], base[2:18])
        assert torch.equal(base, expected), form
    aligned = tvmfast.bind(inline, "add_one", alignment=64)
    base = torch.arange(20, dtype=torch.float32)
    with pytest.raises(ValueError, match="aligned"):
        aligned(base[1:17], base[2:18])


def test_library_files_say_what_they_need_and_export(cpp_library, tvm_library):
    from tvmfast import _core

    path, _, _ = cpp_library
    needed, functions = _core._elf_dynamic_info(path)
    assert any(n.startswith("libtvm_ffi") for n in needed)
    assert functions == sorted(WORKER_FUNCTIONS)
    assert _core._library_built_by_tvm(path) is False
    needed, functions = _core._elf_dynamic_info(tvm_library)
    assert functions == ["main"] and not any(n.startswith("libtvm_ffi") for n in needed)
    assert _core._library_built_by_tvm(tvm_library) is True
    assert _core._elf_dynamic_info(__file__) is None  # not a library


_FRESH_PROCESS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import tvm_ffi, tvmfast
from support import isolation
from support import tvm_kernels as kernels
out = {"cpp": tvmfast.bind(isolation.WORKER_CPP.function("add_one")).alignment}  # the first bind
out["echo"] = tvmfast.bind(tvm_ffi.get_global_func("testing.echo")).alignment
if sys.argv[2] == "tvm":
    mod = kernels.build_add(128)
    out["tvm"] = tvmfast.bind(mod.main).alignment
    out["tvm library"] = tvmfast.bind(tvm_ffi.load_module(sys.argv[3]).main).alignment
print(json.dumps(out))
"""


def test_bare_functions_bound_first_in_a_process(cpp_library, tmp_path_factory):
    """No module bound before: tvmfast learns what it compares functions with from its own
    references (tvm_ffi's test library, a one-line kernel TVM compiles)."""
    import importlib.util

    env = isolation.WORKER_CPP.env(tmp_path_factory)
    args = [sys.executable, "-c", _FRESH_PROCESS, TESTS_DIR, "no-tvm"]
    expected = {"cpp": 1, "echo": 1}
    if importlib.util.find_spec("tvm") is not None:
        lib = str(tmp_path_factory.mktemp("fresh") / "add.so")
        kernels.build_add(128).export_library(lib)
        args[-1:] = ["tvm", lib]
        expected.update({"tvm": 64, "tvm library": 64})
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == expected
