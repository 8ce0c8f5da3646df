"""CuTe DSL kernels (what flash-attention 4 is written in) launched from PyTorch, in one process.

    python -m bench.cute [--out DIR]     # needs CUDA and nvidia-cutlass-dsl

For a 3-tensor and a 9-tensor elementwise kernel compiled with ``cute.compile(...,
options="--enable-tvm-ffi")``: host time per launch of CuTe's own call ``compiled(*args)``,
tvmfast ``bind(compiled)`` dynamic and prepared, the Python-call floor (a bare Cython def method
making the same call) and the C floor (a C loop of ``TVMFFIFunctionCall``).  Interleaved rounds
of bursts of 256 calls, the device synchronized before each burst (the launch queue never
fills); medians.  Writes results_cute.{json,md} and chart_cute.png into --out.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

import tvmfast
from bench import report
from bench.timing import DEF_FLOOR, FLOOR, c_loop, measure, statement, summarize
from tvmfast import _core

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
CUTE = "CuTe's own call compiled(*args)"
DYNAMIC, PREPARED = "tvmfast dynamic", "tvmfast prepared"
BURST = 256
COLUMNS = {"default": [("path", "name"), ("us per launch", "median"), ("25-75%", "spread"),
                       ("vs CuTe's call", "vs_ref"), ("over the C floor (us)", "over_floor")]}


def cute_kernels():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from support import cute_kernels  # noqa: PLC0415  (tests/support/cute_kernels.py: needs nvidia-cutlass-dsl)

    return cute_kernels


def paths(compiled, tensors):
    """name -> runner (us per call) for every way to launch ``compiled`` on ``tensors``."""
    f = tvmfast.bind(compiled)
    prepared = f.prepare(*tensors)
    names = [f"t{i}" for i in range(len(tensors))]
    env = dict(compiled=compiled, f=f, prepared=prepared, **dict(zip(names, tensors)))
    args = ", ".join(names)
    sync = torch.cuda.synchronize
    runners = {CUTE: statement(f"compiled({args})", env, sync), DYNAMIC: statement(f"f({args})", env, sync),
               PREPARED: statement("prepared()", env, sync),
               DEF_FLOOR: statement("floor.call()", dict(floor=_core._DefMethodFloor(prepared)), sync),
               FLOOR: c_loop(lambda k: _core._floor_loop(prepared, k), sync)}
    return runners


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.cute", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--n", type=int, default=4096, help="elements per tensor")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("python -m bench.cute needs CUDA")
    ck = cute_kernels()
    result = dict(info=report.environment(), command=report.command_line("bench.cute", argv), tables={}, notes=[],
                  method=f"Host time per launch: median over {args.rounds} interleaved rounds of bursts of {BURST} "
                         "launches, the device synchronized before each burst.")
    for label, compile_fn, k in (("3 tensors (c = a + b)", ck.compile_add3, 3),
                                 ("9 tensors (out = t0 + ... + t7)", ck.compile_sum9, 9)):
        compiled = compile_fn()
        ts = [torch.randn(args.n, device="cuda") for _ in range(k)]
        tvmfast.bind(compiled)(*ts)
        torch.cuda.synchronize()
        assert torch.equal(ts[-1], sum(ts[:-1])), "the kernel's output is wrong"
        rows = summarize(measure(paths(compiled, ts), args.rounds, BURST), ref=CUTE)
        title = f"CuTe DSL elementwise kernel, {label}, {args.n} float32"
        result["tables"][title] = rows
        speedup = rows[CUTE]["median"] / rows[DYNAMIC]["median"]
        speedup_p = rows[CUTE]["median"] / rows[PREPARED]["median"]
        result["notes"].append(f"{label}: tvmfast dynamic {speedup:.2f}x faster than CuTe's own call per launch "
                               f"(target >= 1.3x: {'met' if speedup >= 1.3 else 'missed'}), prepared {speedup_p:.2f}x "
                               f"(target >= 1.4x: {'met' if speedup_p >= 1.4 else 'missed'}).")
        print(f"{title}: " + ", ".join(f"{n} {r['median']:.2f}" for n, r in rows.items()), flush=True)
    panels = [dict(title=title, bars=rows, xlabel="host us per launch") for title, rows in result["tables"].items()]
    print(report.write(result, args.out, "cute", COLUMNS, panels))
    print(f"wrote {os.path.join(args.out, 'results_cute.json')}, results_cute.md and chart_cute.png")


if __name__ == "__main__":
    main()
