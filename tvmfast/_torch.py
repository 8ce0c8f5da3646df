"""What tvmfast's core needs from torch, found without importing tvmfast (a leaf module).

The core asks, lazily and only once torch tensors show up:
* ``find_to_dlpack_nonowning()`` - where ``at::toDLPackNonOwning`` is, and which of its
  signatures this torch has, for the direct tensor export (the core self-tests it before
  use; set ``TVMFAST_TORCH_DIRECT=0`` to always use torch's DLPack C exchange API instead);
* ``find_op_symbols()`` - torch's stable C ABI functions that register a C kernel for an op
  and release tensor handles, and the exported C++ function that bumps a version counter
  (native torch ops; set ``TVMFAST_NATIVE_OP=0`` to keep as_torch_op's Python kernels);
* ``current_stream(obj, device_type, device_id)`` - torch's current stream for a GPU
  tensor that came without the C exchange API;
* ``setup_scope(torch)`` - the torch state the core's one-time set-ups run in.
"""
import contextlib
import ctypes
import glob
import os
import sys

# at::toDLPackNonOwning by signature, newest first (Itanium C++ ABI names: Linux and macOS).
# The core calls each through its own function type, never one through the other's.
#   torch >= 2.14: (const at::Tensor&, DLTensor*, bool read_only) - called with read_only=false,
#                  as torch's exchange API does (a copy-on-write tensor is materialised first,
#                  so a kernel that writes does not write into the storage it shares)
#   torch <= 2.13: (const at::Tensor&, DLTensor*)
SIGNATURES = (
    ("tensor, dltensor, read_only", "_ZN2at17toDLPackNonOwningERKNS_6TensorEP8DLTensorb"),
    ("tensor, dltensor", "_ZN2at17toDLPackNonOwningERKNS_6TensorEP8DLTensor"),
)
_GPU_DEVICE_TYPES = (2, 10)  # DLPack kDLCUDA, kDLROCM


def _torch_cpu_library(torch):
    """torch's already loaded libtorch_cpu (.so on Linux, .dylib on macOS), or None."""
    for path in sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.*"))):
        try:
            return ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | os.RTLD_LAZY)
        except OSError:
            continue
    return None


def find_to_dlpack_nonowning():
    """(address, signature) of at::toDLPackNonOwning in the loaded torch, signature being one
    of SIGNATURES' descriptions; (0, reason) when it is unavailable or disabled."""
    if os.environ.get("TVMFAST_TORCH_DIRECT", "1") == "0":
        return 0, "disabled by TVMFAST_TORCH_DIRECT=0"
    torch = sys.modules.get("torch")
    if torch is None:
        return 0, "torch is not imported"
    lib = _torch_cpu_library(torch)
    if lib is None:
        return 0, "libtorch_cpu not found next to torch"
    for signature, symbol in SIGNATURES:
        try:
            address = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
        except AttributeError:
            continue
        if address:
            return address, signature
    return 0, "at::toDLPackNonOwning not found in this torch (no known signature)"


# What a native torch op needs from libtorch_cpu: the stable C ABI (plain C names) and
# torch::autograd::impl::bump_version(const at::Tensor&) (an Itanium C++ ABI name).
OP_SYMBOLS = {
    "library_init_impl": "aoti_torch_library_init_impl",
    "library_impl": "aoti_torch_library_impl",
    "delete_library": "aoti_torch_delete_library_object",
    "delete_tensor": "aoti_torch_delete_tensor_object",
    "bump_version": "_ZN5torch8autograd4impl12bump_versionERKN2at6TensorE",
    "try_get_forward_level": "_ZN5torch8autograd14ForwardADLevel14try_get_by_idxEm",
    "empty_strided": "aoti_torch_empty_strided",
    "new_tensor_handle": "aoti_torch_new_tensor_handle",
    "get_dtype": "aoti_torch_get_dtype",
}
# Called once at set-up: the stable C ABI's device type codes.
DEVICE_TYPE_SYMBOLS = {"device_type_cpu": "aoti_torch_device_type_cpu",
                       "device_type_cuda": "aoti_torch_device_type_cuda"}
# In libc10: c10::TensorImpl::requires_grad() const, c10::InferenceMode::is_enabled().
C10_SYMBOLS = {
    "requires_grad": "_ZNK3c1010TensorImpl13requires_gradEv",
    "inference_mode_enabled": "_ZN3c1013InferenceMode10is_enabledEv",
}


def find_op_symbols():
    """({name: address} of OP_SYMBOLS in the loaded torch, None) or (None, reason)."""
    torch = sys.modules.get("torch")
    lib = _torch_cpu_library(torch) if torch is not None else None
    if lib is None:
        return None, "libtorch_cpu not found next to torch"
    found = {}
    for name, symbol in OP_SYMBOLS.items():
        try:
            found[name] = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
        except AttributeError:
            return None, f"this torch does not export {symbol}"
    for name, symbol in DEVICE_TYPE_SYMBOLS.items():
        try:
            function = getattr(lib, symbol)
        except AttributeError:
            return None, f"this torch does not export {symbol}"
        function.restype = ctypes.c_int32
        found[name] = function()
    c10 = None
    for path in sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libc10.*"))):
        try:
            c10 = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | os.RTLD_LAZY)
            break
        except OSError:
            continue
    if c10 is None:
        return None, "libc10 not found next to torch"
    for name, symbol in C10_SYMBOLS.items():
        try:
            found[name] = ctypes.cast(getattr(c10, symbol), ctypes.c_void_p).value
        except AttributeError:
            return None, f"this torch's libc10 does not export {symbol}"
    return found, None


def setup_scope(torch):
    """A context in which torch behaves plainly whatever the caller's state: no torch function
    or dispatch mode (a mode whose handler calls tvmfast would re-enter the set-up; a mode that
    fakes tensors would fake the samples; ``torch.set_default_device`` is such a mode), grad
    mode on, inference mode off (the set-ups make tensors that require grad)."""
    scope = contextlib.ExitStack()
    try:
        scope.enter_context(torch._C.DisableTorchFunction())
        python_dispatch = getattr(torch.utils, "_python_dispatch", None)
        if python_dispatch is not None and hasattr(python_dispatch, "_disable_current_modes"):
            scope.enter_context(python_dispatch._disable_current_modes())
        scope.enter_context(torch.inference_mode(False))
        scope.enter_context(torch.enable_grad())
    except BaseException:
        scope.close()
        raise
    return scope


def current_stream(obj, device_type: int, device_id: int):
    """torch's current stream for a GPU torch tensor that came without the C exchange API
    (older torch); None for anything else, which leaves TVM's stream as it is."""
    torch = sys.modules.get("torch")
    if torch is None or device_type not in _GPU_DEVICE_TYPES or not isinstance(obj, torch.Tensor):
        return None
    return torch.cuda.current_stream(device_id).cuda_stream


def storage_holds_elements(t, lo: int, hi: int) -> bool:
    """Whether a torch tensor's storage holds the bytes [lo, hi) that its elements span."""
    try:
        storage = t.untyped_storage()
        base, nbytes = storage.data_ptr(), storage.nbytes()
    except Exception:  # no storage to shrink (a wrapper subclass...): DLPack export decides
        return True
    return lo == hi or (base <= lo and hi <= base + nbytes)


def traced_tensor_kind(obj):
    """What kind of data-less torch tensor obj is (a functorch wrapper, a FakeTensor, a
    FunctionalTensor), or None: for the error a bound function gives when called directly
    under vmap/grad or inside a trace."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(obj, torch.Tensor):
        return None
    try:
        if torch._C._functorch.is_functorch_wrapped_tensor(obj):
            return "torch.func (vmap/grad) wrapper tensor"
    except AttributeError:
        pass
    for module, name, kind in (("torch._subclasses.fake_tensor", "FakeTensor", "FakeTensor (a compile trace)"),
                               ("torch._subclasses.functional_tensor", "FunctionalTensor",
                                "FunctionalTensor (a compile trace)")):
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(obj, cls):
            return kind
    return None
