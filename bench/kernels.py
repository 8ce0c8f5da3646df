"""Small TVM kernels for tvmfast's examples, tests and benchmarks (need apache-tvm).

Each ``build_*`` returns the runtime module of ``tvm.tirx.build(..., target)``; the
``*_reference`` functions compute the same thing with torch.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile


def _tvm():
    import tvm  # noqa: PLC0415  (apache-tvm is only needed to build kernels)

    return tvm


def build_add(n: int = 128, dtype: str = "float32", target: str = "llvm", offset_factor: int = 0):
    """``C = A + B`` on 1-D tensors of ``n`` elements.

    ``offset_factor=1`` makes the buffers accept any view (data at any address);
    the default lets TVM assume 64-byte aligned data.
    """
    buf = f'"{dtype}", offset_factor={offset_factor}' if offset_factor else f'"{dtype}"'
    src = f'''
@T.prim_func
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    A = T.match_buffer(a, ({n},), {buf})
    B = T.match_buffer(b, ({n},), {buf})
    C = T.match_buffer(c, ({n},), {buf})
    for i in range({n}):
        C[i] = A[i] + B[i]
'''
    return _build(src, target)


def build_add_dynamic(dtype: str = "float32", target: str = "llvm"):
    """``C = A + B`` with a symbolic length ``n = T.int64()``."""
    src = f'''
@T.prim_func
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    n = T.int64()
    A = T.match_buffer(a, (n,), "{dtype}")
    B = T.match_buffer(b, (n,), "{dtype}")
    C = T.match_buffer(c, (n,), "{dtype}")
    for i in range(n):
        C[i] = A[i] + B[i]
'''
    return _build(src, target)


def build_scale(n: int = 64, target: str = "llvm"):
    """``B = A * alpha + shift`` with a float scalar ``alpha`` and an int scalar ``shift``."""
    src = f'''
@T.prim_func
def main(a: T.handle, b: T.handle, alpha: T.float32, shift: T.int32):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    A = T.match_buffer(a, ({n},), "float32")
    B = T.match_buffer(b, ({n},), "float32")
    for i in range({n}):
        B[i] = A[i] * alpha + T.Cast("float32", shift)
'''
    return _build(src, target)


def build_sum_args(num_tensors: int, n: int = 16, target: str = "llvm"):
    """A kernel with ``num_tensors`` tensor arguments: the last gets the sum of the others
    (with one argument: ``A += 1``).  Used for the argument-count sweep."""
    names = [f"t{i}" for i in range(num_tensors)]
    params = ", ".join(f"{x}: T.handle" for x in names)
    lines = [f'    {x.upper()} = T.match_buffer({x}, ({n},), "float32")' for x in names]
    if num_tensors == 1:
        body = "        T0[i] = T0[i] + T.float32(1)"
    else:
        total = " + ".join(f"{x.upper()}[i]" for x in names[:-1])
        body = f"        {names[-1].upper()}[i] = {total}"
    src = (f"@T.prim_func\ndef main({params}):\n"
           f'    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})\n'
           + "\n".join(lines) + f"\n    for i in range({n}):\n{body}\n")
    return _build(src, target)


def build_int4_gemv(n: int = 1024, k: int = 1024, target: str = "llvm"):
    """The seed's kernel: int4 dequantize + GEMV, written for the CPU.

    ``out[0, j] = sum_i x[0, i] * ((w[j, i // 2] >> 4 * (i % 2)) & 0xF - zeros[j]) * scale[j]``
    with x (1, k) fp16, w (n, k/2) int8 holding two int4 values per byte (low nibble
    first), scale and zeros (n,) fp16, out (1, n) fp16; accumulates in fp32.
    """
    src = "@T.prim_func\n" + _gemv_signature(n, k) + f'''
    acc = T.alloc_buffer((1,), "float32")
    for j in range({n}):
        acc[0] = T.float32(0)
        for i in range({k}):
            acc[0] = acc[0] + {_dequant_product("j")}
        O[0, j] = T.Cast("float16", acc[0])
'''
    return _build(src, target)


def _gemv_signature(n: int, k: int) -> str:
    """The int4 GEMV's parameters and buffers (TVMScript, after the decorator line)."""
    return f'''def main(x: T.handle, w: T.handle, s: T.handle, z: T.handle, o: T.handle):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    X = T.match_buffer(x, (1, {k}), "float16")
    W = T.match_buffer(w, ({n}, {k // 2}), "int8")
    S = T.match_buffer(s, ({n},), "float16")
    Z = T.match_buffer(z, ({n},), "float16")
    O = T.match_buffer(o, (1, {n}), "float16")'''


def _dequant_product(row: str) -> str:
    """TVMScript of x[0, i] * dequant(w[row, i]): the low nibble of byte i // 2 for even i,
    the high one for odd i, minus the row's zero, times the row's scale."""
    return (f'T.Cast("float32", X[0, i]) * (T.Cast("float32", T.bitwise_and('
            f'T.shift_right(T.Cast("int32", W[{row}, i // 2]), 4 * (i % 2)), 15)) '
            f'- T.Cast("float32", Z[{row}])) * T.Cast("float32", S[{row}])')


def int4_gemv_reference(x, w, scale, zeros):
    """torch reference of :func:`build_int4_gemv` (fp32 math, fp16 result)."""
    import torch  # noqa: PLC0415

    w32 = w.to(torch.int32)
    low = w32 & 0xF
    high = (w32 >> 4) & 0xF
    nibbles = torch.stack([low, high], dim=-1).reshape(w.shape[0], -1).float()
    deq = (nibbles - zeros.float()[:, None]) * scale.float()[:, None]
    return (x.float() @ deq.T).half()


def random_int4_gemv_inputs(n: int = 1024, k: int = 1024, device="cpu", generator=None):
    """Fresh random inputs (x, w, scale, zeros) for the int4 GEMV."""
    import torch  # noqa: PLC0415

    x = torch.randn(1, k, generator=generator).half()
    w = torch.randint(-128, 128, (n, k // 2), dtype=torch.int8, generator=generator)
    scale = (torch.rand(n, generator=generator) * 0.02 + 0.001).half()
    zeros = torch.randint(0, 16, (n,), generator=generator).half()
    return [t.to(device) for t in (x, w, scale, zeros)]


_BUILT: dict = {}


def _build(body: str, target):
    """TVMScript needs a source file to parse: write one, import it, build."""
    tvm = _tvm()
    key = (body, str(target))
    if key in _BUILT:
        return _BUILT[key]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write("from tvm.script import tirx as T\n" + body)
        path = fh.name
    try:
        spec = importlib.util.spec_from_file_location("tvmfast_kernel_src", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        target = tvm.target.Target(target) if isinstance(target, (str, dict)) else target
        rt_mod = tvm.tirx.build(module.main, target=target)
    finally:
        os.unlink(path)
    _BUILT[key] = rt_mod
    return rt_mod


# ---------------------------------------------------------------------------
# CUDA kernels (built anywhere; the exported module holds CUDA source that is
# compiled with nvcc when it is loaded on a GPU machine).
# ---------------------------------------------------------------------------
CUDA_TARGET = {"kind": "cuda", "arch": "sm_90"}


def build_add_cuda(n: int = 1024, dtype: str = "float32", target=None):
    """``C = A + B`` on the GPU, one thread per element (the tiny launch-bound kernel)."""
    threads = min(n, 256)
    src = f'''
@T.prim_func(s_tir=True)
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    A = T.match_buffer(a, ({n},), "{dtype}")
    B = T.match_buffer(b, ({n},), "{dtype}")
    C = T.match_buffer(c, ({n},), "{dtype}")
    for bx in T.thread_binding({n // threads}, thread="blockIdx.x"):
        for tx in T.thread_binding({threads}, thread="threadIdx.x"):
            with T.sblock("c"):
                vi = T.axis.spatial({n}, bx * {threads} + tx)
                C[vi] = A[vi] + B[vi]
'''
    return _build(src, target or CUDA_TARGET)


def build_int4_gemv_cuda(n: int = 1024, k: int = 1024, target=None):
    """The seed's kernel for sm_90: same math as :func:`build_int4_gemv`, one thread per
    output row (1x``k`` fp16 input, ``n``x``k/2`` int8 of int4 pairs, per-row fp16 scale and zero)."""
    threads = 64
    src = "@T.prim_func(s_tir=True)\n" + _gemv_signature(n, k) + f'''
    for bx in T.thread_binding({n // threads}, thread="blockIdx.x"):
        for tx in T.thread_binding({threads}, thread="threadIdx.x"):
            with T.sblock("row"):
                vj = T.axis.spatial({n}, bx * {threads} + tx)
                T.reads(X[0, 0:{k}], W[vj, 0:{k // 2}], S[vj], Z[vj])
                T.writes(O[0, vj])
                acc = T.sblock_alloc_buffer((1,), "float32", scope="local")
                acc[0] = T.float32(0)
                for i in range({k}):
                    acc[0] = acc[0] + {_dequant_product("vj")}
                O[0, vj] = T.Cast("float16", acc[0])
'''
    return _build(src, target or CUDA_TARGET)
