"""Every test under tests/compat runs twice: "direct" (the upstream test as it is) and "bind"
(every function it obtains routed through tvmfast.bind: see tvmfast_compat.py).

The vendored modules come from apache/tvm-ffi and apache/tvm (README.md in this folder: source
commits, what was left out and why, every edit).  A test that only checks the function object
itself rather than what calling it does would be excluded from bind mode in BIND_EXCLUDED, with
the reason; a test that has such a check among call checks keeps running, with that check
guarded by ``tvmfast_compat.direct_mode()`` in the vendored file (marked "tvmfast:").
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os

import pytest
import tvm_ffi.testing
import tvmfast_compat

# Vendored apache/tvm-ffi tests import tvm_ffi.testing.run_with_gpu_lock, which apache-tvm-ffi 0.1.15
# has and 0.1.12 (the tox env tvm025) lacks. The lock only serializes GPU tests across
# parallel pytest workers; this suite runs in one process, so calling the function is the same.
if not hasattr(tvm_ffi.testing, "run_with_gpu_lock"):
    def _run_with_gpu_lock(func, /, *args, **kwargs):
        return func(*args, **kwargs)

    tvm_ffi.testing.run_with_gpu_lock = _run_with_gpu_lock

# The modules vendored from apache/tvm build kernels: without apache-tvm there is nothing to run.
collect_ignore_glob = [] if importlib.util.find_spec("tvm") else ["test_tvm_*.py"]

# "file::test" (parameters ignored) -> why the upstream test cannot run in tvmfast's suite at all.
SKIPPED = {
    "test_ffi_object.py::test_get_registered_type_keys":
        "assumes only tvm_ffi's own types are registered; this suite also loads apache-tvm (runtime.* types)",
}

# "file::test" (parameters ignored) -> (distribution, version, what changed): the upstream test asserts
# behaviour that the distribution's releases before that version lack, so it fails directly there
# (and so in bind mode too); skipped in both modes on those releases (the tox env tvm025:
# apache-tvm-ffi 0.1.12, apache-tvm 0.25). The version is the oldest one the tox matrix runs it on.
_FFI = "apache-tvm-ffi", "0.1.15"
_TVM = "apache-tvm", "0.26"
NEEDS_NEWER = {
    "test_ffi_device.py::test_device_rejects_noncanonical_aliases": (*_FFI, "accepts aliases such as 'llvm'"),
    "test_ffi_dtype.py::test_builtin_dtype_conversion": (*_FFI, "no tvm_ffi.float8_e3m4 etc., no dtype.is_bool"),
    "test_ffi_dtype.py::test_dtype_aliases": (*_FFI, "short dtype aliases (i32, f8_e4m3fn, ...) unknown"),
    "test_ffi_dtype.py::test_dtype_kind_properties": (*_FFI, "no dtype.is_bool/is_int/is_float/is_handle"),
    "test_ffi_function.py::test_echo": (*_FFI, "echo returns a DataType, not a tvm_ffi.dtype"),
    "test_ffi_function.py::test_typed_device_arg_accepts_string": (*_FFI, "a typed Device argument takes no str"),
    "test_ffi_string.py::test_string": (*_FFI, "returns tvm_ffi String, not str"),
    "test_ffi_string.py::test_bytes": (*_FFI, "returns tvm_ffi Bytes, not bytes"),
    "test_ffi_tensor.py::test_tensor_data_ptr": (*_FFI, "no Tensor.data_ptr"),
    "test_tvm_codegen_c_host.py::test_workspace_allocation_cast": (*_TVM, "other C codegen for workspaces"),
    "test_tvm_codegen_c_host.py::test_vector_access_ptr_address_uses_ramp_base": (*_TVM, "other C codegen of ramps"),
    "test_tvm_codegen_extern.py::test_add_pipeline": (*_TVM, "no tvm.device_from_target"),
    "test_tvm_minimal_codegen_llvm.py::test_llvm_add_pipeline": (*_TVM, "te tensor dtype has no .dtype"),
}


def _older_than(distribution: str, version: str) -> bool:
    from packaging.version import Version  # (pytest's own dependency)

    try:
        return Version(importlib.metadata.version(distribution)) < Version(version)
    except importlib.metadata.PackageNotFoundError:
        return False


# "file::test" (parameters ignored) -> why bind mode does not apply.
# (None so far: the few checks of that kind sit among call checks, and are guarded in place.)
BIND_EXCLUDED: dict[str, str] = {}


def _key(item) -> str:
    return f"{os.path.basename(item.path)}::{item.originalname}"


@pytest.fixture(params=["direct", "bind"], autouse=True)
def call_mode(request, monkeypatch):
    """The mode this test runs in (both, for every test of this folder)."""
    mode = request.param
    if _key(request.node) in SKIPPED:
        pytest.skip(SKIPPED[_key(request.node)])
    if _key(request.node) in NEEDS_NEWER:
        distribution, version, change = NEEDS_NEWER[_key(request.node)]
        if _older_than(distribution, version):
            pytest.skip(f"upstream test of {distribution} >= {version} behaviour (older: {change})")
    if mode == "bind":
        reason = BIND_EXCLUDED.get(_key(request.node))
        if reason is not None:
            pytest.skip(f"not about calls through bind: {reason}")
        tvmfast_compat.route_through_bind(monkeypatch, request.module)
    tvmfast_compat.MODE = mode
    try:
        yield mode
    finally:
        tvmfast_compat.MODE = "direct"
