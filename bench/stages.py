"""Where one tvmfast call's time goes, stage by stage (needs a build with stage timing).

    CPPFLAGS=-DTVMFAST_TRACE python setup.py build_ext --inplace --force
    python -m bench.stages [--out DIR] [--kernel-dir DIR] [--rounds N]

That build stamps a clock (the TSC on x86-64, else a steady clock) at the boundaries of a
call's stages: opening the call context, converting the arguments, checking devices and
picking the stream, swapping TVM's stream and allocator, releasing the GIL, the C call,
taking the GIL back, converting the result, releasing the call's tensors (the stages are
named in ``tvmfast/measure/trace.h``, ``TvmfastStage``). Every other build has empty stamps.

Each figure is us per call, net of the stamps' own cost (calibrated by making a call's
stamps back to back, so the small stages are approximate to a few ns). "The rest" is
the call's wall time less the stamped stages: Python's vectorcall into tvmfast, the
argument-count checks before the context opens, and the return. A stamped build is slower
than a normal one by the stamps, so compare these with each other, not with the other
benchmarks' tables.

CPU: the add of 3 tensors of 128 float32 (dynamic, ``release_gil=False``, prepared) and
``testing.echo`` of one torch tensor (a call whose result is a tensor). GPU, when CUDA is
there: the seed's int4 GEMV (dynamic, prepared), host time, the device synchronized between
bursts. Interleaved rounds, medians. Writes results_stages_<cpu|gpu>.{json,md} and a chart
into --out.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import torch
import tvm_ffi

import tvmfast
from bench import kernels, report
from bench.timing import FLOOR, c_loop, statement
from tvmfast import _core

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")

# TvmfastStage, in order (index 0 counts the calls).
STAGES = ("open the call context", "convert the arguments", "devices, stream, misaligned copies",
          "make TVM's stream and allocator the producer's", "release the GIL", "TVMFFIFunctionCall",
          "take the GIL back", "convert the result",
          "restore the environment, settle copies, release the call's tensors")
REST = "the rest: Python's call into tvmfast and back, count checks"
WHOLE = "whole call (stamps removed)"
TITLE = "Stages of one call"
BURST_CPU, BURST_GPU = 20000, 256
COLUMNS = {"default": [("stage", "name"), ("us per call", "median"), ("25-75%", "spread"),
                       ("share of the call above TVMFFIFunctionCall", "share")]}
BUILD = "CPPFLAGS=-DTVMFAST_TRACE python setup.py build_ext --inplace --force"


def measure_stages(calls: dict, rounds: int, burst: int) -> dict:
    """name -> rows (stage -> median us per call) for each runner in ``calls``
    (:func:`bench.timing.statement`), timed in interleaved rounds of ``burst`` calls."""
    stamp_ticks = _core._stage_stamp_ticks()
    t0, c0 = time.perf_counter(), _core._stage_clock()
    samples = {name: [] for name in calls}
    for run in calls.values():  # warm up
        run(burst // 10 + 1)
    for _ in range(rounds):
        for name, run in calls.items():
            before = _core._stage_ticks()
            us_per_call = run(burst)
            ticks = [b - a for a, b in zip(before, _core._stage_ticks())]
            if ticks[0] != burst:
                raise AssertionError(f"{name}: {ticks[0]} stamped calls for {burst} made")
            samples[name].append((us_per_call / 1e6, [t / burst for t in ticks[1:]]))
    ticks_per_s = (_core._stage_clock() - c0) / (time.perf_counter() - t0)
    out = {}
    for name, runs in samples.items():
        per_stage = {}
        for k, stage in enumerate(STAGES):
            per_stage[stage] = [(s[k] - stamp_ticks) / ticks_per_s * 1e6 for _, s in runs]
        # Wall time less everything from the first stamp to the last, and the first stamp itself.
        per_stage[REST] = [w * 1e6 - (sum(s) + stamp_ticks) / ticks_per_s * 1e6 for w, s in runs]
        per_stage[WHOLE] = [w * 1e6 - (len(STAGES) + 1) * stamp_ticks / ticks_per_s * 1e6 for w, _ in runs]
        rows = {}
        for stage, values in per_stage.items():
            q = statistics.quantiles(values, n=4)
            rows[stage] = dict(median=statistics.median(values), p25=q[0], p75=q[2])
        above = rows[WHOLE]["median"] - rows["TVMFFIFunctionCall"]["median"]
        for stage, row in rows.items():
            if stage not in (WHOLE, "TVMFFIFunctionCall") and above > 0:
                row["share"] = row["median"] / above
        out[name] = rows
    return out


def floor_row(prepared, burst: int, sync=None) -> dict:
    """The C loop of TVMFFIFunctionCall on the prepared arguments, us per call (median of 7)."""
    run = c_loop(lambda n: _core._floor_loop(prepared, n), sync)
    return dict(median=statistics.median(run(burst) for _ in range(7)))


def cpu_tables(rounds: int) -> dict:
    ts = [torch.randn(128) for _ in range(3)]
    f = tvmfast.bind(kernels.build_add(128))
    f_hold = tvmfast.bind(kernels.build_add(128), release_gil=False)
    f(*ts)
    torch.testing.assert_close(ts[2], ts[0] + ts[1])
    prepared = f.prepare(*ts)
    echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
    x = torch.randn(16)
    if echo(x).data_ptr() != x.data_ptr():
        raise AssertionError("testing.echo did not give back the tensor's memory")
    env = dict(f=f, f_hold=f_hold, prepared=prepared, echo=echo, x=x, t0=ts[0], t1=ts[1], t2=ts[2])
    calls = {"CPU, add of 3 tensors of 128 float32, dynamic call": statement("f(t0, t1, t2)", env),
             "CPU, the same add, release_gil=False": statement("f_hold(t0, t1, t2)", env),
             "CPU, the same add, prepared call": statement("prepared()", env),
             "CPU, testing.echo of one torch tensor (a tensor result)": statement("echo(x)", env)}
    tables = measure_stages(calls, rounds, BURST_CPU)
    floor = floor_row(prepared, BURST_CPU)
    for name in list(tables)[:3]:
        tables[name][FLOOR] = floor
    return {f"{TITLE}: {name} (us per call)": rows for name, rows in tables.items()}


def gpu_tables(rounds: int, kernel_dir: str | None) -> dict:
    seed = kernels.SEED_GEMV
    f = tvmfast.bind(kernels.named_kernel(seed["name"], kernel_dir))
    g = torch.Generator().manual_seed(0)
    ts = kernels.seed_gemv_args(seed["n"], seed["k"], device="cuda", generator=g)
    f(*ts)
    torch.cuda.synchronize()
    ref = kernels.int4_gemv_reference(*[t.cpu() for t in ts[:4]]).float()
    err = ((ts[4].cpu().float() - ref).abs().max() / ref.abs().max()).item()
    if not err < 1e-2:
        raise AssertionError(f"seed GEMV: relative error {err} against the torch reference")
    prepared = f.prepare(*ts)
    sync = torch.cuda.synchronize
    env = dict(f=f, prepared=prepared, **{f"t{i}": t for i, t in enumerate(ts)})
    calls = {"GPU, seed int4 GEMV (5 tensors), dynamic call": statement("f(t0, t1, t2, t3, t4)", env, sync),
             "GPU, seed int4 GEMV, prepared call": statement("prepared()", env, sync)}
    tables = measure_stages(calls, rounds, BURST_GPU)
    floor = floor_row(prepared, BURST_GPU, sync)
    for rows in tables.values():
        rows[FLOOR] = floor
    return {f"{TITLE}: {name} (host us per call)": rows for name, rows in tables.items()}


def main(argv=None):
    args = report.bench_parser("bench.stages", __doc__, OUT, 21).parse_args(argv)
    if _core._stage_ticks() is None:
        print(f"bench.stages needs tvmfast built with stage timing: {BUILD}", file=sys.stderr)
        return 2
    gpu = torch.cuda.is_available() and not args.cpu_only
    tag = "stages_gpu" if gpu else "stages_cpu"
    result = dict(info=report.environment(), command=report.command_line("bench.stages", argv), tables={},
                  notes=[], method=f"A build with stage timing ({BUILD}); median over {args.rounds} interleaved "
                                   f"rounds, the stamps' own cost removed ({_core._stage_stamp_ticks():.1f} "
                                   f"clock ticks each).")
    result["tables"].update(gpu_tables(args.rounds, args.kernel_dir) if gpu else cpu_tables(args.rounds))
    for title, table in result["tables"].items():
        print(f"{title}: " + ", ".join(f"{n} {r['median']:.3f}" for n, r in table.items()), flush=True)
    panels = [dict(title=title.split(": ", 1)[1], bars={k: v for k, v in rows.items() if "p25" in v}, xlabel="us")
              for title, rows in result["tables"].items()]
    report.write(result, args.out, tag, COLUMNS, panels)
    print(report.written(args.out, tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
