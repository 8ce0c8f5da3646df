"""The forum thread's fastest path, and the driver's floor, for a kernel TVM generated.

The thread's author compiled the CUDA source of the kernel with nvcc into a small shared
library with a C launch wrapper and called it through ctypes with ``data_ptr()`` ints
(4.5 us a call against 4.4 us of kernel time on an A100). :func:`build` does the same with the
source TVM generated, and adds ``culaunch_loop``: a C loop of ``cuLaunchKernel`` on the same
compiled kernel, the least host time an eager launch can take (in this process, on the
legacy default stream that TVM and torch use by default). Needs nvcc.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import tempfile

_SIGNATURE = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(([^)]*)\)\s*\{')
_PARAM = re.compile(r"(.*?)\s*(?:__restrict__\s*)?(\w+)_ptr$")

_WRAPPER = """
#include <cuda.h>
#include <time.h>

// The thread's wrapper: a plain <<<>>> launch of the kernel, arguments in the call order.
extern "C" int call({params}) {{
  {kernel}<<<dim3({grid}), dim3({block})>>>({casts});
  return (int)cudaGetLastError();
}}

static decltype(&cuLaunchKernel) launch = nullptr;  // found at run time: no -lcuda
static CUfunction fn = nullptr;

static int find_kernel() {{
  if (launch != nullptr) return 0;
  cudaDriverEntryPointQueryResult found;
  if (cudaGetDriverEntryPointByVersion("cuLaunchKernel", (void**)&launch, 12000, cudaEnableDefault, &found)
      != cudaSuccess || found != cudaDriverEntryPointSuccess) return -1;
  return cudaGetFuncBySymbol((cudaFunction_t*)&fn, (const void*){kernel}) == cudaSuccess ? 0 : -2;
}}

// The driver's floor: n cuLaunchKernel of the same kernel in a C loop.
extern "C" int culaunch_loop(long long n, {params}) {{
  if (int err = find_kernel()) return err;
  void* args[] = {{{addresses}}};
  for (long long i = 0; i < n; ++i) {{
    CUresult r = launch(fn, {grid}, {block}, 0, nullptr, args, nullptr);
    if (r != CUDA_SUCCESS) return (int)r;
  }}
  return 0;
}}

// The same with other CPU work between launches (launches = 0: the work alone): spin for spin_ns,
// then read and write one byte per 64-byte line of a buffer of touch_bytes. Does a launch cost
// more when the CPU does something else between launches, as a Python caller does?
static unsigned char scratch[1 << 22];

extern "C" int culaunch_gap_loop(long long n, int launches, long long spin_ns, long long touch_bytes, {params}) {{
  if (launches)
    if (int err = find_kernel()) return err;
  void* args[] = {{{addresses}}};
  if (touch_bytes > (long long)sizeof(scratch)) touch_bytes = sizeof(scratch);
  for (long long i = 0; i < n; ++i) {{
    if (launches) {{
      CUresult r = launch(fn, {grid}, {block}, 0, nullptr, args, nullptr);
      if (r != CUDA_SUCCESS) return (int)r;
    }}
    timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < spin_ns);
    for (long long k = 0; k < touch_bytes; k += 64) scratch[k] += 1;
  }}
  return 0;
}}
"""


def wrapper_source(cuda_source: str, call_order, grid, block) -> str:
    """TVM's CUDA source plus the two C entry points, for a kernel whose buffers are named
    ``call_order`` (TVM names the kernel's parameters ``<buffer>_ptr``, in its own order)."""
    kernel, params = _SIGNATURE.search(cuda_source).groups()
    kernel_params = []
    for p in params.split(","):
        ctype, name = _PARAM.match(p.strip()).groups()
        kernel_params.append((name, ctype.replace("__restrict__", "").strip()))
    pos = {name: i for i, name in enumerate(call_order)}
    return cuda_source + _WRAPPER.format(
        kernel=kernel, grid=", ".join(map(str, grid)), block=", ".join(map(str, block)),
        params=", ".join(f"void* a{i}" for i in range(len(call_order))),
        casts=", ".join(f"({ctype})a{pos[name]}" for name, ctype in kernel_params),
        addresses=", ".join(f"&a{pos[name]}" for name, _ in kernel_params))


def build(cuda_source: str, call_order, grid, block, arch: str = "sm_90", folder: str | None = None):
    """Compile with nvcc and load: ``lib.call(*ptrs)``, ``lib.culaunch_loop(n, *ptrs)``,
    ``lib.culaunch_gap_loop(n, launches, spin_ns, touch_bytes, *ptrs)``."""
    folder = folder or tempfile.mkdtemp(prefix="tvmfast_nvcc_")
    src, lib_path = os.path.join(folder, "seed_lib.cu"), os.path.join(folder, "seed_lib.so")
    with open(src, "w") as fh:
        fh.write(wrapper_source(cuda_source, call_order, grid, block))
    subprocess.run(["nvcc", "-O3", f"-arch={arch}", "-shared", "-Xcompiler", "-fPIC", "-w", "-o", lib_path, src],
                   check=True)
    lib = ctypes.CDLL(lib_path)
    n = len(call_order)
    lib.call.argtypes = [ctypes.c_void_p] * n
    lib.call.restype = ctypes.c_int
    lib.culaunch_loop.argtypes = [ctypes.c_longlong] + [ctypes.c_void_p] * n
    lib.culaunch_loop.restype = ctypes.c_int
    lib.culaunch_gap_loop.argtypes = [ctypes.c_longlong, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong] + [
        ctypes.c_void_p] * n
    lib.culaunch_gap_loop.restype = ctypes.c_int
    return lib
