"""Every way to call a TVM kernel from PyTorch on the CPU, side by side, in one process.

    python -m bench.harness              # full run: bench/out/results_cpu.{md,json}, chart_cpu.png
    python -m bench.harness --quick      # a few iterations (the smoke test)
    python -m bench.report               # then: bench/RESULTS.md and the figures in README.md, docs/

Copy bench/out/results_cpu.json and chart_cpu.png to bench/results/ to make a run the project's
figures (the run prints the command). How paths are timed: bench/timing.py. The GPU counterpart is
``python -m bench.gpu``.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import tracemalloc

import torch

import tvmfast
from bench import kernels, report
from bench.timing import FLOOR, REF, call_paths, measure, summarize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
DYNAMIC, PREPARED, FROZEN = "tvmfast dynamic", "tvmfast prepared", "tvmfast frozen"


def workload_add(n=128):
    ts = [torch.randn(n), torch.randn(n), torch.empty(n)]
    return f"add, 3 tensors of {n} float32", kernels.build_add(n), ts, (0, 1)


def workload_gemv(n=64, k=128):
    x, w, s, z = kernels.random_int4_gemv_inputs(n, k)
    ts = [x, w, s, z, torch.empty(1, n, dtype=torch.float16)]
    return f"int4 dequantize + GEMV ({n}x{k}), 5 tensors", kernels.build_int4_gemv(n, k), ts, (1, 2, 3)


def sweep(counts, rounds, number):
    """us/call vs number of tensor arguments: tvm_ffi, tvmfast dynamic and prepared, the floor."""
    out = {}
    for k in counts:
        runners, _ = call_paths(kernels.build_sum_args(k, n=16), [torch.randn(16) for _ in range(k)], ())
        keep = {name: runners[name] for name in (REF, DYNAMIC, PREPARED, FLOOR)}
        out[str(k)] = summarize(measure(keep, rounds, number))
    return out


def slope(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def allocation_check(calls):
    """Python heap blocks and RSS across many tvmfast calls in steady state."""
    a, b, c = torch.randn(128), torch.randn(128), torch.empty(128)
    f = tvmfast.bind(kernels.build_add(128))
    p = f.prepare(a, b, c)
    for _ in range(1000):
        f(a, b, c), p()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for _ in range(100_000):
        f(a, b, c)
        p()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    blocks = sum(s.count_diff for s in snap1.compare_to(snap0, "filename") if s.count_diff > 0
                 and "tracemalloc" not in str(s.traceback))

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    gc.collect()
    r0 = rss()
    for _ in range(calls):
        f(a, b, c)
    gc.collect()
    return dict(new_python_blocks_over_2e5_calls=blocks, rss_growth_bytes=rss() - r0, rss_calls=calls)


def targets(result):
    tables = list(result["tables"].values())
    add, big = tables[0], tables[-1]
    sw = result["sweep"]
    ks = sorted(int(k) for k in sw)

    def per_arg_ns(name):
        return round(slope(ks, [sw[str(k)][name]["over_floor"] for k in ks]) * 1e3, 1)

    return {
        "tvmfast dynamic's time above the floor / tvm_ffi's <= 0.333": round(
            add[DYNAMIC]["over_floor"] / add[REF]["over_floor"], 3),
        "tvmfast prepared / the floor <= 1.25": round(add[PREPARED]["vs_floor"], 3),
        "tvmfast frozen / the floor": round(add[FROZEN]["vs_floor"], 3),
        "tvmfast prepared / the floor, add of 4096": round(big[PREPARED]["vs_floor"], 3),
        "ns per further tensor, tvmfast dynamic (slope above the floor) <= 30": per_arg_ns(DYNAMIC),
        "ns per further tensor, tvm_ffi (slope above the floor)": per_arg_ns(REF),
        "new Python heap blocks over 2e5 tvmfast calls": result["allocations"]["new_python_blocks_over_2e5_calls"],
        f"RSS growth (bytes) over {result['allocations']['rss_calls']:,} tvmfast calls":
            result["allocations"]["rss_growth_bytes"],
    }


COLUMNS = {"default": [("path", "name"), ("us/call", "median"), ("25-75%", "spread"), ("vs tvm_ffi", "vs_ref"),
                       ("above floor (us)", "over_floor")],
           "Argument-count sweep": [("tensors", "name"), ("tvm_ffi", REF), ("tvmfast dynamic", DYNAMIC),
                                    ("tvmfast prepared", PREPARED), ("floor", FLOOR)],
           "Targets": report.TARGET_COLUMNS}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
    # Many short rounds: a round of one path lasts a millisecond or so, less than a scheduler's time
    # slice, so on a machine doing other work most rounds run uninterrupted and the median is theirs.
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--number", type=int, default=2000, help="calls per round and path (add of 128)")
    parser.add_argument("--out", default=OUT, help="output folder (default: bench/out)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.number = 3, 200
    result = dict(info=report.environment(), command=report.command_line("bench.harness", argv),
                  method=f"{args.rounds} interleaved rounds of {args.number} calls per path (a tenth of that for "
                         "the add of 4096, a hundredth for the GEMV, so that a round lasts about as long for each "
                         "kernel); median, 25-75% spread.", tables={})
    for make in (workload_add, workload_gemv, lambda: workload_add(4096)):
        title, mod, ts, frozen_positions = make()
        number = (args.number if "of 128 " in title else max(args.number // 100, 10) if "GEMV" in title
                  else max(args.number // 10, 10))
        runners, _ = call_paths(mod, ts, frozen_positions)
        result["tables"][title] = rows = summarize(measure(runners, args.rounds, number))
        for name, row in rows.items():
            print(f"{title}: {name}: {row['median']:.3f} us", flush=True)
    result["sweep"] = sweep((1, 4, 16, 64), args.rounds, args.number // 2)
    result["allocations"] = allocation_check(10_000 if args.quick else 1_000_000)
    result["targets"] = targets(result)
    sweep_paths = (REF, DYNAMIC, PREPARED, FLOOR)
    result["tables"]["Argument-count sweep"] = {k: {name: row[name]["median"] for name in sweep_paths}
                                                for k, row in result["sweep"].items()}
    result["tables"]["Targets"] = report.target_rows(result["targets"])
    ks = sorted(result["sweep"], key=int)
    panels = [dict(title=title, bars=rows, log=True, xlabel="us per call (median, 25-75%), log scale")
              for title, rows in list(result["tables"].items())[:3]]
    panels.append(dict(title="argument-count sweep (16 float32 each)", xlabel="tensor arguments", ylabel="us per call",
                       x=[int(k) for k in ks],
                       lines={name: [result["sweep"][k][name]["median"] for k in ks]
                              for name in sweep_paths}))
    text = report.write(result, args.out, "cpu", COLUMNS, panels)
    print(text)
    print(report.written(args.out, "cpu"))
    return result


if __name__ == "__main__":
    main()
