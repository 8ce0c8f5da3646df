"""C loops over the single steps of a dynamic GPU call, to see what each costs on its own.

A dynamic tvmfast call on GPU tensors does, beyond the C floor's TVMFFIFunctionCall: one
Python vectorcall into the extension, per tensor an export to a DLTensor, one query of
torch's current stream, one TVMFFIEnvGetStream (TVM's stream, compared with torch's). The
loops here time the C steps in isolation (n calls each, in C), so that what remains of
(dynamic - floor) is the Python-level part. Needs a C++ compiler.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import time

import torch
import tvm_ffi.libinfo

_SOURCE = r"""
#include <dlpack/dlpack.h>
#include <stdint.h>

extern "C" int stream_query_loop(const DLPackExchangeAPI* api, int32_t device_type, int32_t device_id,
                                 long long n) {
  void* stream = nullptr;
  for (long long i = 0; i < n; ++i)
    if (api->current_work_stream((DLDeviceType)device_type, device_id, &stream) != 0) return -1;
  return 0;
}

extern "C" int export_loop(const DLPackExchangeAPI* api, void** objects, int count, long long n) {
  DLTensor dl;
  for (long long i = 0; i < n; ++i)
    for (int k = 0; k < count; ++k)
      if (api->dltensor_from_py_object_no_sync(objects[k], &dl) != 0) return -1;
  return 0;
}

typedef void* (*get_stream_t)(int32_t, int32_t);

extern "C" int env_stream_loop(get_stream_t get_stream, int32_t device_type, int32_t device_id, long long n) {
  void* volatile stream = nullptr;
  for (long long i = 0; i < n; ++i) stream = get_stream(device_type, device_id);
  return stream == (void*)1;
}
"""


def _exchange_api() -> int:
    capsule = torch.Tensor.__dlpack_c_exchange_api__
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def build(folder: str | None = None):
    folder = folder or tempfile.mkdtemp(prefix="tvmfast_probe_")
    src, lib_path = os.path.join(folder, "probe.cc"), os.path.join(folder, "probe.so")
    with open(src, "w") as fh:
        fh.write(_SOURCE)
    include = tvm_ffi.libinfo.find_include_path()
    subprocess.run([shutil.which("c++") or "g++", "-O2", "-shared", "-fPIC", "-I", include, "-o", lib_path, src],
                   check=True)
    return ctypes.PyDLL(lib_path)  # keeps the GIL: the export reads Python objects


def step_costs(tensors, number: int = 100_000) -> dict:
    """ns per call of each C step of a dynamic call on ``tensors`` (all on one device)."""
    if not hasattr(torch.Tensor, "__dlpack_c_exchange_api__"):
        return {"note": "this torch has no DLPack C exchange API"}
    lib = build()
    api = ctypes.c_void_p(_exchange_api())
    dev = tensors[0].device
    dev_type, dev_id = (2 if dev.type == "cuda" else 1), (dev.index or 0)
    objects = (ctypes.c_void_p * len(tensors))(*[id(t) for t in tensors])
    get_stream = ctypes.cast(ctypes.CDLL(tvm_ffi.libinfo.find_libtvm_ffi()).TVMFFIEnvGetStream, ctypes.c_void_p)
    loops = {
        "torch current_work_stream (exchange API)":
            lambda n: lib.stream_query_loop(api, dev_type, dev_id, ctypes.c_longlong(n)),
        f"torch DLTensor export x{len(tensors)} (exchange API)":
            lambda n: lib.export_loop(api, objects, len(tensors), ctypes.c_longlong(n)),
        "TVMFFIEnvGetStream": lambda n: lib.env_stream_loop(get_stream, dev_type, dev_id, ctypes.c_longlong(n)),
    }
    out = {}
    for name, loop in loops.items():
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            if loop(number) != 0:
                raise RuntimeError(f"{name} failed")
            best = min(best, time.perf_counter() - t0)
        out[name] = best / number * 1e9
    return out
