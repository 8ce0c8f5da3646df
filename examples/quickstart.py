"""Build a small TVM kernel for the CPU, call it every way, print a timing table.

    python examples/quickstart.py [--n 128] [--rounds 15] [--number 20000]
"""
import argparse
import statistics
import time
import timeit

import torch
import tvm_ffi

import tvmfast
from tvmfast import kernels


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=128, help="elements of the add kernel")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=20000, help="calls per round and path")
    args = parser.parse_args()

    rt_mod = kernels.build_add(args.n)           # tvm.tirx.build(..., target="llvm")
    a, b = torch.randn(args.n), torch.randn(args.n)
    out = torch.empty(args.n)

    f = tvmfast.bind(rt_mod)                     # the drop-in
    f(a, b, out)
    assert torch.equal(out, a + b), "wrong result"
    frozen = f.freeze({0: a, 1: b})              # static arguments converted once
    prepared = f.prepare(a, b, out)              # everything converted once

    ffi_func = rt_mod["main"]
    tvm_args = [tvm_ffi.from_dlpack(t) for t in (a, b, out)]
    env = dict(rt_mod=rt_mod, ffi_func=ffi_func, tvm_args=tvm_args, a=a, b=b, out=out,
               f=f, frozen=frozen, prepared=prepared)
    paths = {
        "rt_mod(*tvm tensors)": "rt_mod(*tvm_args)",
        "tvm_ffi f(*torch)": "ffi_func(a, b, out)",
        "tvmfast dynamic": "f(a, b, out)",
        "tvmfast frozen": "frozen(out)",
        "tvmfast prepared": "prepared()",
    }
    timers = {name: timeit.Timer(stmt, globals=env) for name, stmt in paths.items()}
    samples = {name: [] for name in list(paths) + ["C loop floor"]}
    for _ in range(args.rounds):  # interleaved rounds: drift hits every path alike
        for name, timer in timers.items():
            samples[name].append(timer.timeit(args.number) / args.number * 1e6)
        t0 = time.perf_counter()
        tvmfast._core._floor_loop(prepared, args.number)
        samples["C loop floor"].append((time.perf_counter() - t0) / args.number * 1e6)

    ref = statistics.median(samples["tvm_ffi f(*torch)"])
    print(f"add of {args.n} float32, {args.rounds} rounds x {args.number} calls, median us/call")
    print(f"{'path':24} {'us/call':>8} {'vs tvm_ffi':>10}")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:24} {med:8.3f} {med / ref:9.2f}x")


if __name__ == "__main__":
    main()
