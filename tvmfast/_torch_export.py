"""Locate torch's ``at::toDLPackNonOwning`` for the direct tensor export of ``_core``.

The extension only uses it after its own self-test (see
``_core._enable_torch_direct_export``); set ``TVMFAST_TORCH_DIRECT=0`` to always
go through torch's public DLPack C exchange API instead.
"""
import ctypes
import os
import sys

_SYMBOL = "_ZN2at17toDLPackNonOwningERKNS_6TensorEP8DLTensor"


def setup_torch_direct_export() -> bool:
    """Enable the direct export if torch is imported and the self-test passes."""
    from tvmfast import _core  # noqa: PLC0415

    if os.environ.get("TVMFAST_TORCH_DIRECT", "1") == "0":
        return False
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    lib_path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(lib_path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        address = ctypes.cast(getattr(lib, _SYMBOL), ctypes.c_void_p).value
    except (OSError, AttributeError):
        return False
    return bool(_core._enable_torch_direct_export(torch, address or 0))


def current_stream(obj, device_type: int, device_id: int):
    """torch's current stream for a GPU torch tensor that came without the C exchange API
    (older torch); None for anything else, which leaves TVM's stream as it is."""
    torch = sys.modules.get("torch")
    if torch is None or device_type not in (2, 10) or not isinstance(obj, torch.Tensor):  # CUDA, ROCm
        return None
    return torch.cuda.current_stream(device_id).cuda_stream
