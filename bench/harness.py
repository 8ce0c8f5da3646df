"""Every way to call a TVM kernel from PyTorch, side by side, in one process.

    python bench/harness.py                # full CPU run: table, bench/RESULTS.md, PNG, JSON
    python bench/harness.py --quick        # a few iterations (the smoke test)
    python bench/harness.py --gpu          # also the CUDA workloads (needs kernels in --cuda-dir)

Paths are timed in interleaved rounds (each round runs every path once), so drift on
a noisy machine hits all of them alike; each figure is the median over rounds of the
mean us/call of one round, with the 25-75% spread.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
import timeit
import tracemalloc

import torch
import tvm_ffi

import tvmfast
from tvmfast import _core, kernels

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctypes_path import make_ctypes_caller  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_OP_IDS = itertools.count()  # each workload registers its own torch op


def call_paths(rt_mod, tensors, frozen_positions, with_ctypes=True):
    """name -> timed statement, their globals, and the prepared call (for the floor).

    The ctypes path fills CPU DLTensors only, so GPU runs leave it out."""
    func = rt_mod["main"]
    f = tvmfast.bind(rt_mod)
    f(*tensors)
    frozen = f.freeze({i: tensors[i] for i in frozen_positions})
    dynamic_args = [t for i, t in enumerate(tensors) if i not in frozen_positions]
    f_gil = tvmfast.bind(rt_mod, release_gil=True)  # GIL released around the C call
    prepared = f.prepare(*tensors)
    env = dict(
        rt_mod=rt_mod, func=func, ts=tensors, tvm_ts=[tvm_ffi.from_dlpack(t) for t in tensors],
        from_dlpack=tvm_ffi.from_dlpack, to_dlpack=torch.utils.dlpack.to_dlpack,
        ctypes_call=make_ctypes_caller(func) if with_ctypes else None, f=f, frozen=frozen, dyn=dynamic_args,
        prepared=prepared, f_gil=f_gil, floor=_core._floor_loop)
    n = len(tensors)
    # Each argument a global name (f(t0, t1, ...)): no *args tuple and no subscript per
    # argument in the timed statement, so the statement costs every path the same little.
    env.update({f"t{i}": t for i, t in enumerate(tensors)})
    env.update({f"v{i}": t for i, t in enumerate(env["tvm_ts"])})
    env.update({f"d{i}": t for i, t in enumerate(dynamic_args)})
    unpack = ", ".join(f"t{i}" for i in range(n))
    dyn_unpack = ", ".join(f"d{i}" for i in range(len(dynamic_args)))
    tvm_unpack = ", ".join(f"v{i}" for i in range(n))
    paths = {
        "1 rt_mod(*tvm tensors)": f"rt_mod({tvm_unpack})",
        "2 rt_mod['main'](*tvm tensors)": f"func({tvm_unpack})",
        "3 tvm_ffi f(*torch)": f"func({unpack})",
        "4 from_dlpack(to_dlpack(t)) per call": "func(*[from_dlpack(to_dlpack(t)) for t in ts])",
        "5 ctypes TVMFFIFunctionCall": f"ctypes_call({unpack})",
        "6 tvmfast dynamic": f"f({unpack})",
        "6g tvmfast dynamic, release_gil=True": f"f_gil({unpack})",
        "7 tvmfast frozen": f"frozen({dyn_unpack})",
        "8 tvmfast prepared": "prepared()",
    }
    if not with_ctypes:
        del paths["5 ctypes TVMFFIFunctionCall"]
    return paths, env, prepared


def measure(paths, env, prepared, rounds, number, extra=None):
    """Interleaved rounds; returns name -> list of us/call (one per round)."""
    timers = {name: timeit.Timer(stmt, globals=env) for name, stmt in paths.items()}
    samples = {name: [] for name in paths}
    samples["9 C loop floor"] = []
    for name, timer in timers.items():  # warm-up
        timer.timeit(max(number // 10, 1))
    for _ in range(rounds):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(number) / number * 1e6)
        t0 = time.perf_counter()
        _core._floor_loop(prepared, number)
        samples["9 C loop floor"].append((time.perf_counter() - t0) / number * 1e6)
        for name, fn in (extra or {}).items():
            samples.setdefault(name, []).append(fn(number))
    return samples


def summarize(samples, ref_name="3 tvm_ffi f(*torch)", floor_name="9 C loop floor"):
    rows = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        rows[name] = dict(median=statistics.median(values), p25=q[0], p75=q[2])
    ref, floor = rows[ref_name]["median"], rows[floor_name]["median"]
    for row in rows.values():
        row["vs_tvm_ffi"] = row["median"] / ref
        row["over_floor"] = row["median"] - floor
    return rows


def markdown_table(title, rows):
    lines = [f"### {title}", "", "| path | us/call | 25-75% | ratio to tvm_ffi | above floor (us) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median']:.3f} | {r['p25']:.3f}-{r['p75']:.3f} | "
                     f"{r['vs_tvm_ffi']:.2f} | {r['over_floor']:.3f} |")
    return "\n".join(lines)


def custom_op_extra(rt_mod, tensors):
    """Optional path: the torch.library custom op around the bound function."""
    f = tvmfast.bind(rt_mod)
    if not hasattr(f, "as_torch_op"):
        return {}
    op = f.as_torch_op(f"tvmfast_bench::op{next(_OP_IDS)}", mutates_args=(len(tensors) - 1,),
                       example_args=tensors)
    env = {f"t{i}": t for i, t in enumerate(tensors)}
    env["op"] = op
    stmt = f"op({', '.join(f't{i}' for i in range(len(tensors)))})"
    timer = timeit.Timer(stmt, globals=env)

    def run(number):
        return timer.timeit(number) / number * 1e6

    extra = {"10 torch custom op (as_torch_op)": run}
    p = f.prepare(*tensors)
    ptrs = [t.data_ptr() for t in tensors]
    ptr_env = {f"p{i}": v for i, v in enumerate(ptrs)}
    ptr_env["p"] = p
    ptr_timer = timeit.Timer(f"p.call_ptrs({', '.join(f'p{i}' for i in range(len(ptrs)))})",
                             globals=ptr_env)
    extra["11 tvmfast prepared.call_ptrs"] = lambda number: ptr_timer.timeit(number) / number * 1e6
    return extra


def workload_add(n=128):
    mod = kernels.build_add(n)
    ts = [torch.randn(n), torch.randn(n), torch.empty(n)]
    return f"add, 3 tensors of {n} float32", mod, ts, (0, 1)


def workload_gemv(n=64, k=128):
    mod = kernels.build_int4_gemv(n, k)
    x, w, s, z = kernels.random_int4_gemv_inputs(n, k)
    ts = [x, w, s, z, torch.empty(1, n, dtype=torch.float16)]
    return f"int4 dequantize + GEMV ({n}x{k}), 5 tensors", mod, ts, (1, 2, 3)


def sweep(counts, rounds, number):
    """us/call vs number of tensor arguments: tvm_ffi, tvmfast dynamic, floor."""
    out = {}
    for k in counts:
        mod = kernels.build_sum_args(k, n=16)
        ts = [torch.randn(16) for _ in range(k)]
        paths, env, prepared = call_paths(mod, ts, frozen_positions=())
        keep = {name: paths[name] for name in ("3 tvm_ffi f(*torch)", "6 tvmfast dynamic", "8 tvmfast prepared")}
        out[k] = summarize(measure(keep, env, prepared, rounds, number))
    return out


def slope(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def allocation_check(calls):
    """P5: Python heap blocks and RSS across many tvmfast calls in steady state."""
    mod = kernels.build_add(128)
    ts = [torch.randn(128), torch.randn(128), torch.empty(128)]
    f = tvmfast.bind(mod)
    p = f.prepare(*ts)
    for _ in range(1000):
        f(*ts), p()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    a, b, c = ts
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


def machine_info():
    import tvm  # noqa: PLC0415

    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        python=platform.python_version(), torch=torch.__version__, tvm=tvm.__version__,
        tvm_ffi=tvm_ffi.__version__, tvmfast=tvmfast.__version__,
        torch_direct_export=_core._torch_direct_export_enabled())


def plot(results, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    workloads = results["workloads"]
    fig, axes = plt.subplots(1, len(workloads) + 1, figsize=(6 * (len(workloads) + 1), 5))
    for ax, (title, rows) in zip(axes, workloads.items()):
        names = list(rows)
        ax.barh(names, [rows[n]["median"] for n in names],
                xerr=[[rows[n]["median"] - rows[n]["p25"] for n in names],
                      [rows[n]["p75"] - rows[n]["median"] for n in names]], color="tab:blue")
        ax.invert_yaxis()
        ax.set_xscale("log")  # ctypes and the custom op are 100x the fast paths
        ax.set_xlabel("us per call (median, 25-75%), log scale")
        ax.set_title(title, fontsize=9)
    ax = axes[-1]
    sw = results["sweep"]
    ks = sorted(int(k) for k in sw)
    for name in ("3 tvm_ffi f(*torch)", "6 tvmfast dynamic", "8 tvmfast prepared", "9 C loop floor"):
        ax.plot(ks, [sw[str(k)][name]["median"] for k in ks], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tensor arguments")
    ax.set_ylabel("us per call")
    ax.set_title("argument-count sweep (16 float32 each)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def targets(results):
    add = results["workloads"][next(iter(results["workloads"]))]
    floor = add["9 C loop floor"]["median"]
    ffi = add["3 tvm_ffi f(*torch)"]["median"]
    dyn = add["6 tvmfast dynamic"]["median"]
    prep = add["8 tvmfast prepared"]["median"]
    frozen = add["7 tvmfast frozen"]["median"]
    sw = results["sweep"]
    ks = sorted(int(k) for k in sw)
    over = [sw[str(k)]["6 tvmfast dynamic"]["median"] - sw[str(k)]["9 C loop floor"]["median"] for k in ks]
    per_arg_ns = slope(ks, over) * 1e3
    per_arg_ffi_ns = slope(ks, [sw[str(k)]["3 tvm_ffi f(*torch)"]["median"] - sw[str(k)]["9 C loop floor"]["median"] for k in ks]) * 1e3
    alloc = results.get("allocations", {})
    big = [rows for title, rows in results["workloads"].items() if "4096" in title]
    p2_big = (round(big[0]["8 tvmfast prepared"]["median"] / big[0]["9 C loop floor"]["median"], 3)
              if big else None)
    return {
        "P1 (dynamic-floor)/(tvm_ffi-floor) <= 0.333": round((dyn - floor) / (ffi - floor), 3),
        "P2 prepared/floor <= 1.25": round(prep / floor, 3),
        "P2 frozen/floor": round(frozen / floor, 3),
        "P2 prepared/floor, add of 4096 (floor ~0.45 us)": p2_big,
        "P3 ns per extra tensor (dynamic - floor slope) <= 30": round(per_arg_ns, 1),
        "P3 same for tvm_ffi": round(per_arg_ffi_ns, 1),
        "P5 new Python heap blocks over 2e5 calls": alloc.get("new_python_blocks_over_2e5_calls"),
        "P5 RSS growth bytes": alloc.get("rss_growth_bytes"),
    }


def write_results(results, out_dir, tag):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"results_{tag}.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    plot(results, os.path.join(out_dir, f"chart_{tag}.png"))
    info = results["info"]
    lines = [f"## {tag.upper()}: {info['date']}", "",
             f"Machine: {info['machine']}; Python {info['python']}, torch {info['torch']}, "
             f"apache-tvm {info['tvm']}, apache-tvm-ffi {info['tvm_ffi']}, tvmfast {info['tvmfast']} "
             f"(direct torch export: {info['torch_direct_export']}).",
             f"Command: `{results['command']}`; {results['rounds']} interleaved rounds x "
             f"{results['number']} calls per path.", ""]
    for title, rows in results["workloads"].items():
        lines += [markdown_table(title, rows), ""]
    lines += ["### Argument-count sweep (us/call, median)", "",
              "| tensors | tvm_ffi | tvmfast dynamic | tvmfast prepared | floor |", "|---:|---:|---:|---:|---:|"]
    for k in sorted(results["sweep"], key=int):
        r = results["sweep"][k]
        lines.append(f"| {k} | {r['3 tvm_ffi f(*torch)']['median']:.3f} | {r['6 tvmfast dynamic']['median']:.3f} | "
                     f"{r['8 tvmfast prepared']['median']:.3f} | {r['9 C loop floor']['median']:.3f} |")
    lines += ["", "### Targets", "", "| target | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in results["targets"].items()]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, f"results_{tag}.md"), "w") as fh:
        fh.write(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--out", default=os.path.join(HERE, "out"), help="JSON/PNG/MD output folder")
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.number = 3, 200
    results = dict(info=machine_info(), command="python bench/harness.py " + " ".join(argv or sys.argv[1:]),
                   rounds=args.rounds, number=args.number, workloads={})
    for make in (workload_add, workload_gemv, lambda: workload_add(4096)):
        title, mod, ts, frozen_positions = make()
        paths, env, prepared = call_paths(mod, ts, frozen_positions)
        number = args.number if "128 " in title else max(args.number // 10, 10)
        samples = measure(paths, env, prepared, args.rounds, number, custom_op_extra(mod, ts))
        results["workloads"][title] = summarize(samples)
    results["info"]["torch_direct_export"] = _core._torch_direct_export_enabled()
    results["sweep"] = {str(k): v for k, v in sweep((1, 4, 16, 64), args.rounds, args.number // 2).items()}
    results["allocations"] = allocation_check(10_000 if args.quick else 1_000_000)
    results["targets"] = targets(results)
    text = write_results(results, args.out, args.tag)
    print(text)
    return results


if __name__ == "__main__":
    main()
