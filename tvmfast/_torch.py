"""What tvmfast's core needs from torch, found without importing tvmfast (a leaf module).

The core asks, lazily and only once torch tensors show up:
* ``to_dlpack_nonowning_address()`` - the address of ``at::toDLPackNonOwning`` for
  the direct tensor export (the core self-tests it before use; set
  ``TVMFAST_TORCH_DIRECT=0`` to always use torch's DLPack C exchange API instead);
* ``current_stream(obj, device_type, device_id)`` - torch's current stream for a GPU
  tensor that came without the C exchange API.
"""
import ctypes
import os
import sys

_SYMBOL = "_ZN2at17toDLPackNonOwningERKNS_6TensorEP8DLTensor"
_GPU_DEVICE_TYPES = (2, 10)  # DLPack kDLCUDA, kDLROCM


def to_dlpack_nonowning_address() -> int:
    """Address of at::toDLPackNonOwning in the loaded torch, or 0 if unavailable or disabled."""
    if os.environ.get("TVMFAST_TORCH_DIRECT", "1") == "0":
        return 0
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    lib_path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(lib_path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        return ctypes.cast(getattr(lib, _SYMBOL), ctypes.c_void_p).value or 0
    except (OSError, AttributeError):
        return 0


def current_stream(obj, device_type: int, device_id: int):
    """torch's current stream for a GPU torch tensor that came without the C exchange API
    (older torch); None for anything else, which leaves TVM's stream as it is."""
    torch = sys.modules.get("torch")
    if torch is None or device_type not in _GPU_DEVICE_TYPES or not isinstance(obj, torch.Tensor):
        return None
    return torch.cuda.current_stream(device_id).cuda_stream


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
