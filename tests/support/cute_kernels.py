"""Small CuTe DSL kernels compiled to tvm_ffi functions (``cute.compile(..., options=
"--enable-tvm-ffi")``), for the tests and ``python -m bench.cute``.  Compiling needs
nvidia-cutlass-dsl but no GPU (``CUTE_DSL_ARCH`` picks the target; sm_90a here when unset).

* ``compile_add3()``, ``compile_sum9()``: GPU kernels of 3 and 9 float32 tensors of any
  length (``c = a + b``; ``out = t0 + ... + t7``);
* ``compile_host_add()``: the same add as a host-only function, which runs on the CPU;
* ``compile_host_scaled()``: a host function with a default and a keyword-only parameter
  (``c = a * alpha + beta``), whose calls CuTe's keyword wrapper completes itself.
"""
import os

os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")

import cutlass  # noqa: E402
import cutlass.cute as cute  # noqa: E402
from cutlass.cute.runtime import make_fake_compact_tensor  # noqa: E402

OPTIONS = "--enable-tvm-ffi"


@cute.kernel
def _add_kernel(a: cute.Tensor, b: cute.Tensor, c: cute.Tensor):
    tidx, _, _ = cute.arch.thread_idx()
    bidx, _, _ = cute.arch.block_idx()
    bdim, _, _ = cute.arch.block_dim()
    i = bidx * bdim + tidx
    if i < cute.size(a):
        c[i] = a[i] + b[i]


@cute.jit
def _add(a: cute.Tensor, b: cute.Tensor, c: cute.Tensor):
    n = cute.size(a)
    _add_kernel(a, b, c).launch(grid=((n + 127) // 128, 1, 1), block=(128, 1, 1))


@cute.kernel
def _sum_kernel(t0: cute.Tensor, t1: cute.Tensor, t2: cute.Tensor, t3: cute.Tensor, t4: cute.Tensor,
                t5: cute.Tensor, t6: cute.Tensor, t7: cute.Tensor, out: cute.Tensor):
    tidx, _, _ = cute.arch.thread_idx()
    bidx, _, _ = cute.arch.block_idx()
    bdim, _, _ = cute.arch.block_dim()
    i = bidx * bdim + tidx
    if i < cute.size(out):
        out[i] = t0[i] + t1[i] + t2[i] + t3[i] + t4[i] + t5[i] + t6[i] + t7[i]


@cute.jit
def _sum9(t0: cute.Tensor, t1: cute.Tensor, t2: cute.Tensor, t3: cute.Tensor, t4: cute.Tensor,
          t5: cute.Tensor, t6: cute.Tensor, t7: cute.Tensor, out: cute.Tensor):
    n = cute.size(out)
    _sum_kernel(t0, t1, t2, t3, t4, t5, t6, t7, out).launch(grid=((n + 127) // 128, 1, 1), block=(128, 1, 1))


@cute.jit
def _host_add(a: cute.Tensor, b: cute.Tensor, c: cute.Tensor):
    for i in cutlass.range(cute.size(a)):
        c[i] = a[i] + b[i]


@cute.jit
def _host_scaled(a: cute.Tensor, c: cute.Tensor, alpha: cutlass.Float32 = 2.0, *, beta: cutlass.Float32 = 0.5):
    for i in cutlass.range(cute.size(a)):
        c[i] = a[i] * alpha + beta


def _fake(n, memspace=None):
    if memspace is None:
        return make_fake_compact_tensor(cutlass.Float32, (n,))
    return make_fake_compact_tensor(cutlass.Float32, (n,), memspace=memspace)


def compile_add3():
    n = cute.sym_int()
    return cute.compile(_add, _fake(n), _fake(n), _fake(n), options=OPTIONS)


def compile_sum9():
    n = cute.sym_int()
    return cute.compile(_sum9, *[_fake(n) for _ in range(9)], options=OPTIONS)


def compile_host_add():
    n = cute.sym_int()
    host = cute.AddressSpace.generic
    return cute.compile(_host_add, _fake(n, host), _fake(n, host), _fake(n, host), options=OPTIONS)


def compile_host_scaled():
    n = cute.sym_int()
    host = cute.AddressSpace.generic
    return cute.compile(_host_scaled, _fake(n, host), _fake(n, host), options=OPTIONS)
