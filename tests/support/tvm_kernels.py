"""The TVM kernels the tests build (apache-tvm is imported only when one is built).

Each ``build_*`` returns the runtime module of ``tvm.tirx.build(..., target)``; the
``*_reference`` functions compute the same thing with torch; :func:`build_tvmscript` builds any
TVMScript ``main``.  The benchmarks import their kernels from here (``bench/kernels.py``), never
the reverse; the examples build their own (``examples/add_kernel.py``).
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
    return build_tvmscript(src, target)


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
    return build_tvmscript(src, target)


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
    return build_tvmscript(src, target)


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
    return build_tvmscript(src, target)


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
    return build_tvmscript(src, target)


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
    """torch reference of :func:`build_int4_gemv` and :func:`build_seed_gemv_cuda` (fp32 math,
    fp16 result); ``scale`` and ``zeros`` of shape (n,) or the seed's (n, 1)."""
    import torch  # noqa: PLC0415

    w32 = w.to(torch.int32)
    low = w32 & 0xF
    high = (w32 >> 4) & 0xF
    nibbles = torch.stack([low, high], dim=-1).reshape(w.shape[0], -1).float()
    deq = (nibbles - zeros.float().reshape(-1, 1)) * scale.float().reshape(-1, 1)
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


def build_tvmscript(body: str, target="llvm"):
    """The runtime module of the TVMScript ``body`` (a ``@T.prim_func def main``, with
    ``from tvm.script import tirx as T`` in scope) built for ``target``, cached by source and
    target.  TVMScript needs a source file to parse: write one, import it, build."""
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


_build = build_tvmscript  # the name older test modules use


# ---------------------------------------------------------------------------
# CUDA kernels. Building needs apache-tvm but no GPU: the runtime module holds CUDA
# source that is compiled when the module is loaded. On a machine with only TVM's
# runtime, load them from a folder exported beforehand (``python -m bench.kernels DIR``)
# named by ``--kernel-dir`` or the environment variable TVMFAST_KERNEL_DIR.
# ---------------------------------------------------------------------------
KERNEL_DIR_ENV = "TVMFAST_KERNEL_DIR"


def cuda_target(arch: str | None = None) -> dict:
    """TVM target for ``arch`` (e.g. ``"sm_90"``); default: the first visible GPU's, else sm_90."""
    if arch is None:
        arch = "sm_90"
        try:
            import torch  # noqa: PLC0415

            if torch.cuda.is_available():
                arch = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
        except ImportError:
            pass
    return {"kind": "cuda", "arch": arch}


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
    return build_tvmscript(src, target or cuda_target())


# The seed's kernel: its call order and launch configuration (for the nvcc library and the raw
# cuLaunchKernel loop of bench/nvcc_lib.py, which launch TVM's CUDA source themselves).
SEED_GEMV = dict(name="seed_gemv_int4", n=1024, k=1024, params=("A", "B", "Scale", "Zeros", "D"),
                 grid=(512, 1, 1), block=(64, 2, 1))


def build_seed_gemv_cuda(n: int = 1024, k: int = 1024, target=None):
    """The forum thread's scheduled int4 dequantize + GEMV, ported to TVM 0.27 as it was.

    ``D[0, j] = sum_i A[0, i] * ((B[j, i // 2] >> 4 * (i % 2)) & 15 - Zeros[j, 0]) * Scale[j, 0]``,
    A (1, k) fp16, B (n, k/2) int8 (two int4 per byte, low nibble first), Scale and Zeros (n, 1)
    fp16, D (1, n) fp16; dequantized and accumulated in fp16 as the original. Its schedule:
    n/2 blocks of (64, 2) threads, two rows per block; per thread 4 int8 loaded as one vector
    into a local buffer and decoded into 8 fp16 locals, 8 fp16 of A loaded as one vector; the
    reduction over k runs across threadIdx.x (TVM lowers it to warp shuffles). TVM 0.27 spells
    ``T.block`` ``T.sblock`` and the root block's ``T.alloc_buffer`` ``T.sblock_alloc_buffer``.
    """
    if n % 2 or k % 512:
        raise ValueError(f"the seed's schedule needs an even n and k a multiple of 512, got n={n}, k={k}")
    src = f'''
@T.prim_func(s_tir=True)
def main(
    A: T.Buffer((1, {k}), "float16"),
    B: T.Buffer(({n}, {k // 2}), "int8"),
    Scale: T.Buffer(({n}, 1), "float16"),
    Zeros: T.Buffer(({n}, 1), "float16"),
    D: T.Buffer((1, {n}), "float16"),
):
    T.func_attr({{
        "dequantize_info": {{"B_decode": {{
            "decode_block": "B_decode", "fast_decoding": T.bool(False), "group_size": {k},
            "source_format": {{"bits": 4, "format": "uint"}}, "storage_dtype": "int8",
            "target_format": "float16", "with_scaling": T.bool(True), "with_zeros": T.bool(True),
            "zeros_type": "original"}}}},
        "global_symbol": "main", "tir.noalias": True}})
    B_decode_local = T.sblock_alloc_buffer(({n}, {k}), "float16", scope="local")
    A_local = T.sblock_alloc_buffer((1, {k}), "float16", scope="local")
    B_local = T.sblock_alloc_buffer(({n}, {k // 2}), "int8", scope="local")
    C_local = T.sblock_alloc_buffer((1, {n}), "float16", scope="local")
    for ax0_0 in T.thread_binding({n // 2}, thread="blockIdx.x"):
        for ax0_1 in T.thread_binding(2, thread="threadIdx.y"):
            for ax1_0 in range({k // 512}):
                for ax1_1 in T.thread_binding(64, thread="threadIdx.x"):
                    for ax0 in range(1):
                        for ax1 in T.vectorized(4):
                            with T.sblock("B_local"):
                                v0 = T.axis.spatial({n}, ax0_0 * 2 + ax0_1 + ax0)
                                v1 = T.axis.spatial({k // 2}, ax1_0 * 256 + ax1_1 * 4 + ax1)
                                T.reads(B[v0, v1])
                                T.writes(B_local[v0, v1])
                                B_local[v0, v1] = B[v0, v1]
                    for ax0, ax1 in T.grid(1, 8):
                        with T.sblock("B_decode_local"):
                            v0 = T.axis.spatial({n}, ax0_0 * 2 + ax0_1 + ax0)
                            v1 = T.axis.spatial({k}, ax1_0 * 512 + ax1_1 * 8 + ax1)
                            T.reads(B_local[v0, v1 // 2], Zeros[v0, 0], Scale[v0, 0])
                            T.writes(B_decode_local[v0, v1])
                            B_decode_local[v0, v1] = (T.Cast("float16", T.bitwise_and(
                                T.shift_right(B_local[v0, v1 // 2], T.Cast("int8", v1 % 2 * 4)),
                                T.int8(15))) - Zeros[v0, 0]) * Scale[v0, 0]
                    for ax0 in range(1):
                        for ax1 in T.vectorized(8):
                            with T.sblock("A_local"):
                                v0 = T.axis.spatial(1, ax0)
                                v1 = T.axis.spatial({k}, ax1_0 * 512 + ax1_1 * 8 + ax1)
                                T.reads(A[v0, v1])
                                T.writes(A_local[v0, v1])
                                A_local[v0, v1] = A[v0, v1]
                    for ax1_2_0, ax1_2_1 in T.grid(4, 2):
                        with T.sblock("C"):
                            v0 = T.axis.spatial({n}, ax0_0 * 2 + ax0_1)
                            v1 = T.axis.reduce({k}, ax1_0 * 512 + ax1_1 * 8 + ax1_2_0 * 2 + ax1_2_1)
                            T.reads(A_local[0, v1], B_decode_local[v0, v1])
                            T.writes(C_local[0, v0])
                            with T.init():
                                C_local[0, v0] = T.float16(0)
                            C_local[0, v0] = C_local[0, v0] + A_local[0, v1] * B_decode_local[v0, v1]
            for ax0, ax1 in T.grid(1, 1):
                with T.sblock("C_local"):
                    v0 = T.axis.spatial(1, ax0)
                    v1 = T.axis.spatial({n}, ax0_0 * 2 + ax0_1 + ax1)
                    T.reads(C_local[v0, v1])
                    T.writes(D[0, v1])
                    D[0, v1] = C_local[v0, v1]
'''
    return build_tvmscript(src, target or cuda_target())


def seed_gemv_args(n: int = 1024, k: int = 1024, device="cuda", generator=None):
    """Fresh random [A, B, Scale, Zeros, D] for :func:`build_seed_gemv_cuda` (D filled with NaN)."""
    import torch  # noqa: PLC0415

    x, w, scale, zeros = random_int4_gemv_inputs(n, k, device=device, generator=generator)
    out = torch.full((1, n), float("nan"), dtype=torch.float16, device=device)
    return [x, w, scale.reshape(n, 1), zeros.reshape(n, 1), out]


NAMED_KERNELS = {  # name -> builder(CUDA target): what the GPU tests and benchmark load
    "add_f32_1024": lambda target: build_add_cuda(1024, target=target),
    "add_f32_65536": lambda target: build_add_cuda(65536, target=target),
    SEED_GEMV["name"]: lambda target: build_seed_gemv_cuda(SEED_GEMV["n"], SEED_GEMV["k"], target=target),
    # a CPU kernel of five tensors: the GPU benchmark's CPU-side comparison on the same host
    "sum5_f32_cpu": lambda target: build_sum_args(5, n=16),
}


def kernel_dir(folder: str | None = None) -> str | None:
    """The folder of prebuilt kernels: ``folder``, else $TVMFAST_KERNEL_DIR, else None (build)."""
    return folder or os.environ.get(KERNEL_DIR_ENV) or None


def named_kernel(name: str, folder: str | None = None):
    """The kernel ``name`` of :data:`NAMED_KERNELS`: loaded from ``<kernel dir>/<name>.so``
    when there is a kernel folder (TVM's runtime suffices), else built here with apache-tvm."""
    folder = kernel_dir(folder)
    if folder is None:
        return NAMED_KERNELS[name](cuda_target())
    path = os.path.abspath(os.path.join(folder, name + ".so"))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no prebuilt kernel {name!r}; export the kernels with "
                                f"`python -m bench.kernels {folder}`")
    import tvm_ffi  # noqa: PLC0415

    return tvm_ffi.load_module(path)


def cuda_source(name: str, folder: str | None = None) -> str:
    """The CUDA C++ source TVM generated for kernel ``name`` (from the kernel folder if any)."""
    folder = kernel_dir(folder)
    if folder is not None:
        with open(os.path.join(folder, name + ".cu")) as fh:
            return fh.read()
    return NAMED_KERNELS[name](cuda_target()).imports[0].inspect_source()


def export_kernels(folder: str, arch: str | None = None) -> list[str]:
    """Build every named kernel (CUDA ones for ``arch``) and write ``<name>.so`` (TVM's runtime
    loads it) and, for CUDA kernels, ``<name>.cu`` (the CUDA source) into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    target = cuda_target(arch)
    for name, build in NAMED_KERNELS.items():
        mod = build(target)
        mod.export_library(os.path.join(folder, name + ".so"))
        if mod.imports:
            with open(os.path.join(folder, name + ".cu"), "w") as fh:
                fh.write(mod.imports[0].inspect_source())
    return sorted(os.listdir(folder))

