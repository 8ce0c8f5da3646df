"""The ctypes approach of the forum thread, on today's ABI: TVMFFIFunctionCall through
ctypes, with DLTensors filled from ``data_ptr()`` / shape / strides / device at every call
(no stream handling: the kernel runs on TVM's current stream)."""
import ctypes

import tvm_ffi
from tvm_ffi import libinfo

_DTYPE_CODES = {  # torch dtype -> (DLDataTypeCode, bits)
    "torch.float32": (2, 32), "torch.float16": (2, 16), "torch.float64": (2, 64),
    "torch.int8": (0, 8), "torch.int32": (0, 32), "torch.int64": (0, 64), "torch.uint8": (1, 8),
}
K_DLTENSOR_PTR = 7
K_NONE = 0
_DEVICE_TYPES = {"cpu": 1, "cuda": 2}  # DLDeviceType


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class TVMFFIAny(ctypes.Structure):
    _fields_ = [("type_index", ctypes.c_int32), ("zero_padding", ctypes.c_uint32),
                ("v_int64", ctypes.c_int64)]


_lib = ctypes.CDLL(libinfo.find_libtvm_ffi(), mode=ctypes.RTLD_GLOBAL)
_call = _lib.TVMFFIFunctionCall
_call.argtypes = [ctypes.c_void_p, ctypes.POINTER(TVMFFIAny), ctypes.c_int32, ctypes.POINTER(TVMFFIAny)]
_call.restype = ctypes.c_int


def make_ctypes_caller(func: tvm_ffi.Function):
    """``call(*torch_tensors)`` through ctypes."""
    handle = ctypes.c_void_p(func.__chandle__())

    def call(*tensors):
        n = len(tensors)
        dls = (DLTensor * n)()
        args = (TVMFFIAny * n)()
        keep = []
        for i, t in enumerate(tensors):
            shape = (ctypes.c_int64 * t.dim())(*t.shape)
            strides = (ctypes.c_int64 * t.dim())(*t.stride())
            keep.append((shape, strides))
            code, bits = _DTYPE_CODES[str(t.dtype)]
            dls[i].data = t.data_ptr()
            dls[i].device = DLDevice(_DEVICE_TYPES[t.device.type], t.device.index or 0)
            dls[i].ndim = t.dim()
            dls[i].dtype = DLDataType(code, bits, 1)
            dls[i].shape = shape
            dls[i].strides = strides
            dls[i].byte_offset = 0
            args[i].type_index = K_DLTENSOR_PTR
            args[i].v_int64 = ctypes.addressof(dls[i])
        result = TVMFFIAny(K_NONE, 0, 0)
        if _call(handle, args, n, ctypes.byref(result)) != 0:
            raise RuntimeError("TVMFFIFunctionCall failed")

    return call
