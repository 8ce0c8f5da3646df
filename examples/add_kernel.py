"""The TVM kernel the examples call: ``C = A + B`` on ``n`` float32, built for the CPU.

Any compiled TVM function will do; this one is written in TVMScript and built with apache-tvm
(``tvm.compile`` returns an ``Executable``; ``.jit()`` gives its runtime module, which
``tvmfast.bind`` takes).
"""
import tvm
from tvm.script import tirx as T


def build_add(n: int = 128):
    """The runtime module of ``C = A + B`` on 1-D float32 tensors of ``n`` elements."""

    @T.prim_func
    def main(A: T.Buffer((n,), "float32"), B: T.Buffer((n,), "float32"), C: T.Buffer((n,), "float32")):
        T.func_attr({"tir.noalias": True})
        for i in range(n):
            C[i] = A[i] + B[i]

    return tvm.compile(main, target="llvm").jit()
