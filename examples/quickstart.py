"""Build a small TVM kernel for the CPU, call it every way, print what one call costs.

    python examples/quickstart.py [--n 128] [--rounds 201] [--number 2000]

Each round times every path once, one after the other (interleaved), so a change in the machine's
load hits all paths alike, and is short (a millisecond or less), so that most rounds run
uninterrupted by the machine's other work; the figure per path is the median over rounds. The
README's speed table (``python -m bench.harness``) is made the same way, with more paths.
"""
import argparse
import statistics
import timeit

import torch
import tvm_ffi
from add_kernel import build_add  # beside this file: C = A + B in TVMScript

import tvmfast

REF = "tvm_ffi fn(a, b, out)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="elements of the add kernel")
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--number", type=int, default=2000, help="calls per round and path")
    args = parser.parse_args()

    rt_mod = build_add(args.n)                   # tvm.compile(..., target="llvm").jit()
    a, b = torch.randn(args.n), torch.randn(args.n)
    out = torch.empty(args.n)

    f = tvmfast.bind(rt_mod)                     # the drop-in for rt_mod(a, b, out)
    f(a, b, out)
    assert torch.equal(out, a + b), "wrong result"
    frozen = f.freeze({0: a, 1: b})              # a and b fixed: frozen(out)
    prepared = f.prepare(a, b, out)              # every argument fixed: prepared()

    fn = rt_mod["main"]
    # Views of copies: a tvm_ffi view holds a C++ reference to its torch tensor, which would make
    # the other paths' calls on a, b, out cheaper than on tensors held only by Python, as yours are.
    tvm_args = [tvm_ffi.from_dlpack(t.clone()) for t in (a, b, out)]
    env = dict(rt_mod=rt_mod, fn=fn, v0=tvm_args[0], v1=tvm_args[1], v2=tvm_args[2], a=a, b=b, out=out, f=f,
               frozen=frozen, prepared=prepared)
    paths = {  # name -> (statement, what it is)
        "rt_mod(a, b, out)": ("rt_mod(a, b, out)", 'TVM\'s module: finds "main", converts each tensor, per call'),
        REF: ("fn(a, b, out)", 'fn = rt_mod["main"] found once; converts each tensor per call'),
        "fn(*tvm_tensors)": ("fn(v0, v1, v2)", "tensors converted once, before the loop (stale after resize_)"),
        "tvmfast dynamic": ("f(a, b, out)", "f = tvmfast.bind(rt_mod), f(a, b, out): exports each tensor per call"),
        "tvmfast frozen": ("frozen(out)", "g = f.freeze({0: a, 1: b}), g(out): a, b still exported per call"),
        "tvmfast prepared": ("prepared()", "p = f.prepare(a, b, out), p(): every tensor still exported per call"),
    }
    timers = {name: timeit.Timer(stmt, globals=env) for name, (stmt, _) in paths.items()}
    for timer in timers.values():                # warm up
        timer.timeit(max(args.number // 10, 1))
    samples = {name: [] for name in paths}
    for _ in range(args.rounds):                 # interleaved rounds: every path once per round
        for name, timer in timers.items():
            samples[name].append(timer.timeit(args.number) / args.number * 1e6)
    median = {name: statistics.median(values) for name, values in samples.items()}

    print(f"One call of an add of {args.n} float32 on the CPU: median us per call over {args.rounds} "
          f"interleaved rounds of {args.number} calls per path.\n")
    print(f"{'us/call':>8}  {'vs tvm_ffi':>10}  path")
    width = max(len(name) for name in paths)
    for name, (_, what) in paths.items():
        print(f"{median[name]:8.3f}  {median[name] / median[REF]:10.2f}  {name:<{width}}  {what}")
    print("\nThe machine's load moves the absolute times from run to run (and between machines); the ratios to\n"
          "tvm_ffi, measured in the same interleaved rounds, are what to compare with the README's table.")


if __name__ == "__main__":
    main()
