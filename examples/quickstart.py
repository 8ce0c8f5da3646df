"""Build a small TVM kernel for the CPU, call it every way, print a timing table.

    python examples/quickstart.py [--n 128] [--rounds 10] [--number 20000]
"""
import argparse

import torch
import tvm_ffi
from add_kernel import build_add  # beside this file: C = A + B in TVMScript
from torch.utils import benchmark

import tvmfast


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="elements of the add kernel")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--number", type=int, default=20000, help="calls per round and path")
    args = parser.parse_args()

    rt_mod = build_add(args.n)                   # tvm.build(..., target="llvm")
    a, b = torch.randn(args.n), torch.randn(args.n)
    out = torch.empty(args.n)

    f = tvmfast.bind(rt_mod)                     # the drop-in
    f(a, b, out)
    assert torch.equal(out, a + b), "wrong result"
    frozen = f.freeze({0: a, 1: b})              # static arguments converted once
    prepared = f.prepare(a, b, out)              # everything converted once

    env = dict(rt_mod=rt_mod, ffi_func=rt_mod["main"], tvm_args=[tvm_ffi.from_dlpack(t) for t in (a, b, out)],
               a=a, b=b, out=out, f=f, frozen=frozen, prepared=prepared)
    paths = {
        "rt_mod(*tvm tensors)": "rt_mod(*tvm_args)",
        "tvm_ffi f(*torch)": "ffi_func(a, b, out)",
        "tvmfast dynamic": "f(a, b, out)",
        "tvmfast frozen": "frozen(out)",
        "tvmfast prepared": "prepared()",
    }
    results = []
    for _ in range(args.rounds):  # interleaved rounds: drift hits every path alike; Compare shows medians
        for name, stmt in paths.items():
            timer = benchmark.Timer(stmt, globals=env, label=f"one call of an add of {args.n} float32",
                                    sub_label=name, description="time per call")
            results.append(timer.timeit(args.number))
    benchmark.Compare(results).print()


if __name__ == "__main__":
    main()
