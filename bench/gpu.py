"""The forum thread's question on the GPU: its int4-dequantize GEMV called every way, in one process.

The thread is "Strange overhead of tvm.runtime.ndarray.from_dlpack" on the Apache TVM Discuss forum
(https://discuss.tvm.apache.org/): a scheduled int4-dequantize GEMV (1x1024 fp16 x 1024x1024 int4,
five tensors) whose GPU time is shorter than its call from PyTorch, timed on an A100 every way it
can be called (its figures are SEED_A100 below; "seed" in names here means this kernel).

    python -m bench.gpu [--kernel-dir DIR] [--out DIR]    # needs CUDA; nvcc for two of the rows

Kernels are built here with apache-tvm, or loaded from a folder exported with
``python -m bench.kernels DIR`` (``--kernel-dir`` or $TVMFAST_KERNEL_DIR) on a machine that has
only TVM's runtime. Writes results_gpu.{json,md}, chart_gpu.png and compile_profile.txt into
--out (default bench/out), the JSON after each part, and prints where.

1. The thread's table: host time per call of each path (bursts of 256 calls, the device
   synchronized between bursts, so the launch queue never fills), next to the thread's A100
   figures; the kernel's own GPU time (CUPTI, through torch.profiler); CUDA-graph replay.
2. Where a dynamic call's time goes above the C floor: the same call with tvm_ffi tensors
   (no torch export, no stream query), a CPU kernel on the same host, and C loops of each step.
3. A decode-style chain of 16 GEMVs (different weights) per step: eager, torch.cuda.graph,
   torch.compile(mode="reduce-overhead") around the ``as_torch_op`` op, with a profile of the
   compiled step.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import traceback

import torch
import tvm_ffi

import tvmfast
from bench import gpu_probe, kernels, nvcc_lib, report
from bench.timing import DEF_FLOOR, FLOOR, REF, c_loop, call_paths, measure, statement, summarize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
BURST = 256  # calls per timed burst: well inside CUDA's launch queue
LAYERS = 16
SEED = kernels.SEED_GEMV
KERNEL_TIME = "kernel GPU time (CUPTI)"
GRAPH = "CUDA graph replay, per kernel"
NVCC = "nvcc library via ctypes, data_ptr() per call"
CULAUNCH = "raw cuLaunchKernel C loop"
CPU_DYNAMIC, CPU_FLOOR = "CPU kernel (5 tensors), tvmfast dynamic", "CPU kernel (5 tensors), C loop floor"
AFTER_LAUNCH = "GPU prepared call, then the CPU kernel's dynamic call"
# The thread's figures on an A100 (us per call): time_evaluator, rt_mod with tensors converted
# ahead, converted per call with to_dlpack/from_dlpack, ctypes with DLTensors made from
# data_ptr() per call, and the nvcc-compiled library called through ctypes.
SEED_A100 = {KERNEL_TIME: 4.39, "rt_mod(*tvm tensors)": 13.44, "from_dlpack(to_dlpack(t)) per call": 53.40,
             "ctypes TVMFFIFunctionCall": 21.97, NVCC: 4.47}


def sync():
    torch.cuda.synchronize()


def kernel_gpu_time(call, calls=500) -> float:
    """Mean GPU time (us) of the kernels ``call`` launches, from CUPTI via torch.profiler."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415

    for _ in range(50):
        call()
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            call()
        sync()
    kernels_ = [e for e in prof.key_averages() if e.device_time_total > 0 and "main_kernel" in e.key]
    return sum(e.device_time_total for e in kernels_) / sum(e.count for e in kernels_)


def graph_runner(calls, per_graph=64):
    """A runner replaying a CUDA graph of ``per_graph`` rounds of ``calls``: synchronized us per call."""
    for c in calls:
        c()
    sync()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(per_graph):
            for c in calls:
                c()

    def run(n):
        reps = max(n // (per_graph * len(calls)), 1)
        sync()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e3 / (reps * per_graph * len(calls))

    return run


def optional(result, what, make):
    """``make()``, or None with the failure in the notes (the other rows are still measured)."""
    try:
        return make()
    except Exception:
        result["notes"].append(f"{what}: failed:\n\n```\n{traceback.format_exc()}```")
        traceback.print_exc()
        return None


def nvcc_library(ts, kernel_dir):
    """The thread's nvcc library (with the raw cuLaunchKernel loops) built from TVM's CUDA source
    of the kernel, checked against the torch reference."""
    arch = "sm_{}{}".format(*torch.cuda.get_device_capability(0))
    lib = nvcc_lib.build(kernels.cuda_source(SEED["name"], kernel_dir), SEED["params"], SEED["grid"], SEED["block"],
                         arch=arch)
    ptrs = [t.data_ptr() for t in ts]
    if lib.culaunch_loop(1, *ptrs) != 0:
        raise RuntimeError("the cuLaunchKernel loop failed")
    check_output(lambda: lib.call(*ptrs), ts, "the nvcc library")
    return lib


def seed_table(mod, ts, args, result, lib):
    runners, prepared = call_paths(mod, ts, (1, 2, 3), sync=sync)
    if lib is not None:
        ptrs = [t.data_ptr() for t in ts]
        env = dict(lib=lib, c_void_p=ctypes.c_void_p, ts=ts)
        runners[NVCC] = statement("lib.call(*[c_void_p(t.data_ptr()) for t in ts])", env, sync)
        runners[CULAUNCH] = c_loop(lambda n: lib.culaunch_loop(n, *ptrs), sync)
    f = tvmfast.bind(mod)
    graph = optional(result, "CUDA graph", lambda: graph_runner([lambda: f(*ts)]))
    if graph is not None:
        runners[GRAPH] = graph
    rows = summarize(measure(runners, args.rounds, BURST))
    gpu_time = optional(result, "kernel GPU time", lambda: kernel_gpu_time(prepared))
    if gpu_time is not None:
        rows[KERNEL_TIME] = dict(median=gpu_time)
    for name, row in rows.items():
        row["seed_a100"] = SEED_A100.get(name)
        print(f"seed table: {name}: {row['median']:.3f} us", flush=True)
    return {TABLE_SEED: rows}


GAPS = {"250 ns spin": (250, 0), "1000 ns spin": (1000, 0), "32 KiB touched": (0, 32 << 10),
        "256 KiB touched": (0, 256 << 10)}


def launch_gaps(ts, args, lib):
    """A launch's host time in a C loop with other CPU work between launches, minus that work alone."""
    ptrs = [t.data_ptr() for t in ts]
    runners = {CULAUNCH: c_loop(lambda n: lib.culaunch_loop(n, *ptrs), sync)}
    for name, (spin, touch) in GAPS.items():
        for launches in (0, 1):
            runners[(name, launches)] = c_loop(
                lambda n, a=(launches, spin, touch): lib.culaunch_gap_loop(n, *a, *ptrs), sync)
    samples = measure(runners, args.rounds, BURST)
    rows = summarize({CULAUNCH: samples.pop(CULAUNCH)}, ref=None, floor=None)
    for name in GAPS:
        share = summarize({name: [w - a for w, a in zip(samples[(name, 1)], samples[(name, 0)])]}, None, None)
        rows[f"launch, then {name}"] = dict(share[name], work_alone=summarize(
            {name: samples[(name, 0)]}, None, None)[name]["median"])
    for row in rows.values():
        row["vs_floor"] = row["median"] / rows[CULAUNCH]["median"]
    return rows


def check_output(call, ts, what):
    out = ts[-1]
    out.fill_(float("nan"))
    call()
    sync()
    ref = kernels.int4_gemv_reference(*[t.cpu() for t in ts[:4]]).float()
    err = ((out.cpu().float() - ref).abs().max() / ref.abs().max()).item()
    if not err < 1e-2:
        raise AssertionError(f"{what}: relative error {err} against the torch reference")
    return err


def dynamic_profile(mod, ts, args, lib):
    """Host us per call of a dynamic call and its parts, and C loops of the parts (ns)."""
    f = tvmfast.bind(mod)
    prepared = f.prepare(*ts)
    tvm_ts = [tvm_ffi.from_dlpack(t) for t in ts]
    # What any call made from Python costs here, with no argument work at all: the lowest a
    # Python-level path can go (its arguments converted once, trusted, never checked again).
    def_floor = tvmfast._core._DefMethodFloor(prepared)
    env = dict(f=f, prepared=prepared, torch=torch, def_floor=def_floor)
    env.update({f"t{i}": t for i, t in enumerate(ts)})
    env.update({f"v{i}": t for i, t in enumerate(tvm_ts)})
    runners = {
        "tvmfast dynamic, torch tensors": statement("f(t0, t1, t2, t3, t4)", env, sync),
        "tvmfast dynamic, tvm_ffi tensors (no export, no stream query)": statement("f(v0, v1, v2, v3, v4)", env, sync),
        "tvmfast prepared": statement("prepared()", env, sync),
        DEF_FLOOR: statement("def_floor.call()", env, sync),
        FLOOR: c_loop(lambda n: tvmfast._core._floor_loop(prepared, n), sync),
        "torch.cuda.current_stream() from Python": statement("torch.cuda.current_stream()", env),
    }
    cpu = kernels.named_kernel("sum5_f32_cpu", args.kernel_dir)
    cpu_ts = [torch.randn(16) for _ in range(5)]
    fc = tvmfast.bind(cpu)
    pc = fc.prepare(*cpu_ts)
    env.update(fc=fc, **{f"c{i}": t for i, t in enumerate(cpu_ts)})
    runners[CPU_DYNAMIC] = statement("fc(c0, c1, c2, c3, c4)", env)
    runners[CPU_FLOOR] = c_loop(lambda n: tvmfast._core._floor_loop(pc, n))
    # Does a GPU launch slow down the Python-level work after it (caches, TLB)? The CPU call
    # right after a prepared GPU call, against the two alone.
    runners[AFTER_LAUNCH] = statement("prepared(); fc(c0, c1, c2, c3, c4)", env, sync)
    rows = summarize(measure(runners, args.rounds, BURST), ref=None, floor=None)
    for name, row in rows.items():  # above the floor of the same device's kernel
        if name.startswith("tvmfast") or name == DEF_FLOOR:
            row["over_floor"] = row["median"] - rows[FLOOR]["median"]
        elif name == CPU_DYNAMIC:
            row["over_floor"] = row["median"] - rows[CPU_FLOOR]["median"]
    rows[AFTER_LAUNCH]["over_floor"] = (rows[AFTER_LAUNCH]["median"] - rows["tvmfast prepared"]["median"]
                                        - rows[CPU_FLOOR]["median"])
    steps = {name: dict(median=ns / 1e3) for name, ns in gpu_probe.step_costs(ts).items()
             if isinstance(ns, float)}
    tables = {TABLE_DYN: rows, TABLE_STEPS: steps}
    if lib is not None:
        tables[TABLE_GAPS] = launch_gaps(ts, args, lib)
    for table in tables.values():
        for name, row in table.items():
            print(f"dynamic profile: {name}: {row['median']:.3f} us", flush=True)
    return tables


class Decoder(torch.nn.Module):
    """LAYERS GEMVs with different weights (buffers), the output of one the input of the next."""

    def __init__(self, op, layers):
        super().__init__()
        self.op = op
        for i, (w, s, z) in enumerate(layers):
            self.register_buffer(f"w{i}", w)
            self.register_buffer(f"s{i}", s)
            self.register_buffer(f"z{i}", z)

    def forward(self, x):
        for i in range(LAYERS):
            out = torch.empty_like(x)
            self.op(x, getattr(self, f"w{i}"), getattr(self, f"s{i}"), getattr(self, f"z{i}"), out)
            x = out
        return x


class StackedDecoder(torch.nn.Module):
    """The same with the weights, scales and zeros of all layers in one buffer each: 3 tensors
    instead of 3 x LAYERS for torch.compile to guard and cudagraph trees to check."""

    def __init__(self, op, layers):
        super().__init__()
        self.op = op
        for name, parts in zip("wsz", zip(*layers)):
            self.register_buffer(name, torch.stack(parts))

    def forward(self, x):
        for i in range(LAYERS):
            out = torch.empty_like(x)
            self.op(x, self.w[i], self.s[i], self.z[i], out)
            x = out
        return x


class DecoderNoTrees(Decoder):
    """Decoder under its own code object (its own Dynamo cache): compiled with cudagraph trees off."""

    def forward(self, x):
        return super().forward(x)


class DecoderStaticInput(Decoder):
    """Decoder under its own code object: compiled for an input marked static (no copy per call)."""

    def forward(self, x):
        return super().forward(x)


class DecoderCaptured(Decoder):
    """Decoder under its own code object: compiled without CUDA graphs, then captured by hand."""

    def forward(self, x):
        return super().forward(x)


def step_runner(step):
    """A runner of ``n`` synchronized decode steps: us per GEMV."""

    def run(n):
        sync()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e3 / (n * LAYERS)

    return run


def decode_chain(mod, args, out_dir, result):
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(LAYERS):
        _, w, s, z, _ = kernels.seed_gemv_args(SEED["n"], SEED["k"], device="cuda", generator=g)
        layers.append((w, s * 0.5, z))  # keeps the activations' scale about constant over 16 layers
    x = kernels.seed_gemv_args(SEED["n"], SEED["k"], device="cuda", generator=g)[0]
    f = tvmfast.bind(mod)
    acts = [x] + [torch.empty_like(x) for _ in range(LAYERS)]
    chain = [f.prepare(acts[i], *layers[i], acts[i + 1]) for i in range(LAYERS)]

    def eager_dynamic():
        for i in range(LAYERS):
            f(acts[i], *layers[i], acts[i + 1])

    def eager_prepared():
        for p in chain:
            p()

    eager_dynamic()
    sync()
    expected = acts[-1].clone()
    if not torch.isfinite(expected).all():
        raise AssertionError("the chain overflowed fp16")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        eager_dynamic()
    acts[-1].fill_(float("nan"))
    graph.replay()
    sync()
    checks = {"torch.cuda.graph replay": acts[-1]}
    op = tvmfast.bind(mod, num_args=5).as_torch_op("tvmfast_gpu_bench::seed_gemv", mutates_args=(4,))
    model = Decoder(op, layers)
    checks["eager nn.Module, custom op"] = model(x)
    torch._logging.set_logs(perf_hints=True, output_code=True)  # why cudagraphs skip a graph, if they do
    x_static = x.clone()
    torch._dynamo.mark_static_address(x_static)
    steps = {}  # name -> one decode step
    variants = ((COMPILED, model, {}, x), (COMPILED_STACKED, StackedDecoder(op, layers), {}, x),
                (COMPILED_NO_TREES, DecoderNoTrees(op, layers), {"triton.cudagraph_trees": False}, x),
                (COMPILED_STATIC, DecoderStaticInput(op, layers), {}, x_static))
    for name, m, config, inp in variants:
        with torch._inductor.config.patch(config):  # compiled at the first call
            c = torch.compile(m, mode="reduce-overhead", fullgraph=True)
            for _ in range(5):  # CUDA graphs are recorded on a later call
                checks[name] = c(inp).clone()  # the next replay overwrites the output
        steps[name] = lambda c=c, inp=inp: c(inp)
    # torch.compile without its CUDA graphs, the compiled step captured once with torch.cuda.graph
    c = torch.compile(DecoderCaptured(op, layers), fullgraph=True)
    for _ in range(3):
        c(x_static)
    sync()
    captured = torch.cuda.CUDAGraph()
    with torch.cuda.graph(captured):
        y_static = c(x_static)
    y_static.fill_(float("nan"))
    captured.replay()
    sync()
    checks[COMPILED_CAPTURED] = y_static.clone()
    steps[COMPILED_CAPTURED] = captured.replay
    sync()
    torch._logging.set_logs()
    for name, got in checks.items():
        if not torch.equal(got, expected):
            raise AssertionError(f"decode chain: {name} differs from eager tvmfast")
    skips = dict(torch._dynamo.utils.counters.get("inductor", {}))
    result["notes"].append(f"torch.compile counters (inductor): {skips}")

    runners = {
        "eager tvmfast dynamic": step_runner(eager_dynamic),
        "eager tvmfast prepared": step_runner(eager_prepared),
        "eager nn.Module, custom op": step_runner(lambda: model(x)),
        GRAPH_CHAIN: step_runner(graph.replay),
    }
    runners.update({name: step_runner(step) for name, step in steps.items()})
    stance = getattr(torch.compiler, "set_stance", None)
    if stance is not None:
        def unguarded(n, run=runners[COMPILED]):
            with stance("default", skip_guard_eval_unsafe=True):
                return run(n)
        runners[COMPILED + ", guard evaluation skipped"] = unguarded
    rows = summarize(measure(runners, args.rounds, args.steps, warmup=10), ref=None, floor=None)
    seed = result["tables"].get(TABLE_SEED, {})
    gpu_time = seed[KERNEL_TIME]["median"] if KERNEL_TIME in seed else kernel_gpu_time(chain[0])
    for name, row in rows.items():
        row["vs_kernel"] = row["median"] / gpu_time
        row["vs_graph"] = row["median"] / rows[GRAPH_CHAIN]["median"]
        print(f"decode chain: {name}: {row['median']:.3f} us per GEMV", flush=True)
    tables = {TABLE_CHAIN: rows}
    with open(os.path.join(out_dir, "compile_profile.txt"), "w") as fh:
        for name in PROFILED:
            step = graph.replay if name == GRAPH_CHAIN else steps[name]
            tables[f"{TABLE_COMPILE}: {name}"] = profile_step(step, fh, name)
    return tables


def profile_step(step, fh, title, steps=50) -> dict:
    """CPU self time per compiled step by profiler event (us); the profiler's table goes to ``fh``."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        sync()
    events = prof.key_averages()
    fh.write(f"{title}: {steps} steps of {LAYERS} GEMVs\n")
    fh.write(events.table(sort_by="self_cpu_time_total", row_limit=40) + "\n\n")
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return {e.key[:90]: dict(median=e.self_cpu_time_total / steps, calls_per_step=e.count / steps) for e in top}


TABLE_SEED = "The thread's table: int4 dequantize GEMV 1x1024 fp16 x 1024x1024 int4, 5 tensors"
TABLE_DYN = "Where a dynamic call's host time goes (host us per call)"
TABLE_STEPS = "C loops of the single steps of a dynamic call (us per call)"
TABLE_GAPS = "Raw cuLaunchKernel in a C loop with other CPU work between launches: the launch's share (us)"
TABLE_CHAIN = f"Decode chain: {LAYERS} GEMVs (different weights) per step, us per GEMV"
TABLE_COMPILE = "CPU self time per step by profiler event (us)"
COMPILED = "torch.compile reduce-overhead"
COMPILED_STACKED = "torch.compile reduce-overhead, stacked buffers"
COMPILED_NO_TREES = "torch.compile reduce-overhead, cudagraph_trees=False"
COMPILED_STATIC = "torch.compile reduce-overhead, input marked static"
COMPILED_CAPTURED = "torch.compile (no CUDA graphs), step captured with torch.cuda.graph"
GRAPH_CHAIN = "torch.cuda.graph of the dynamic calls"
PROFILED = (COMPILED, COMPILED_STACKED, COMPILED_NO_TREES, COMPILED_STATIC, GRAPH_CHAIN)
COLUMNS = {
    "default": [("path", "name"), ("us", "median"), ("25-75%", "spread")],
    TABLE_SEED: [("path", "name"), ("host us/call", "median"), ("25-75%", "spread"), ("vs tvm_ffi", "vs_ref"),
                 ("vs C floor", "vs_floor"), ("thread's A100 (us)", "seed_a100")],
    TABLE_DYN: [("path", "name"), ("us/call", "median"), ("25-75%", "spread"), ("above C floor", "over_floor")],
    TABLE_GAPS: [("loop", "name"), ("launch us", "median"), ("25-75%", "spread"), ("vs no work between", "vs_floor"),
                 ("the work alone (us)", "work_alone")],
    TABLE_CHAIN: [("path", "name"), ("us per GEMV", "median"), ("25-75%", "spread"),
                  ("vs kernel GPU time", "vs_kernel"), ("vs torch.cuda.graph", "vs_graph")],
}
for _name in PROFILED:
    COLUMNS[f"{TABLE_COMPILE}: {_name}"] = [("event", "name"), ("self CPU us per step", "median"),
                                            ("calls per step", "calls_per_step")]


def findings(result) -> list[str]:
    """Sentences computed from the tables (only those whose rows were measured)."""
    t = result["tables"]
    notes = []
    seed = t.get(TABLE_SEED, {})
    if KERNEL_TIME in seed and GRAPH in seed:
        k, fl = seed[KERNEL_TIME]["median"], seed[FLOOR]["median"]
        notes.append(
            f"Kernel GPU time {k:.2f} us; graph replay {seed[GRAPH]['median']:.2f} us per kernel "
            f"({seed[GRAPH]['median'] / k:.2f}x). Host time per call over the C floor ({fl:.2f} us): tvmfast dynamic "
            f"{seed['tvmfast dynamic']['vs_floor']:.3f}x, frozen {seed['tvmfast frozen']['vs_floor']:.3f}x, prepared "
            f"{seed['tvmfast prepared']['vs_floor']:.3f}x; tvm_ffi f(*torch) {seed[REF]['vs_floor']:.3f}x."
            + (f" The thread's nvcc library via ctypes: {seed[NVCC]['median']:.2f} us, "
               f"{seed[NVCC]['median'] / seed['tvmfast dynamic']['median']:.2f}x tvmfast dynamic; raw cuLaunchKernel "
               f"{seed[CULAUNCH]['median']:.2f} us." if NVCC in seed else ""))
    dyn, steps = t.get(TABLE_DYN, {}), t.get(TABLE_STEPS, {})
    if dyn:
        over = {name: row["over_floor"] for name, row in dyn.items()
                if name.startswith("tvmfast") or name == DEF_FLOOR}
        parts = ", ".join(f"{n} {r['median'] * 1e3:.0f} ns" for n, r in steps.items())
        notes.append(
            "Above the C floor (us): " + "; ".join(f"{n} {v:.3f}" for n, v in over.items()) + f". C loops of the "
            f"single steps: {parts}. A tvmfast call of a CPU kernel of 5 tensors on this host costs "
            f"{dyn[CPU_DYNAMIC]['over_floor']:.3f} us above its floor, and {dyn[AFTER_LAUNCH]['over_floor']:.3f} us "
            "more than the prepared GPU call and its floor when it follows that call in the same statement.")
    gaps = t.get(TABLE_GAPS, {})
    if gaps:
        notes.append("A raw cuLaunchKernel costs " + "; ".join(
            f"{r['median']:.2f} us {n.replace('launch, then ', 'with ')} between launches"
            if n != CULAUNCH else f"{r['median']:.2f} us back to back" for n, r in gaps.items()) + ".")
    chain = t.get(TABLE_CHAIN, {})
    if chain:
        graph = chain[GRAPH_CHAIN]
        notes.append(f"Decode chain: {GRAPH_CHAIN} {graph['median']:.2f} us per GEMV ({graph['vs_kernel']:.2f}x "
                     "kernel GPU time); " + "; ".join(f"{n} {r['median']:.2f} ({r['vs_graph']:.2f}x the graph)"
                                           for n, r in chain.items() if n != GRAPH_CHAIN) + ".")
    for name in PROFILED:
        prof = t.get(f"{TABLE_COMPILE}: {name}")
        if prof:
            notes.append(f"{name}, CPU self time per step (us): "
                         + ", ".join(f"{n} {r['median']:.1f}" for n, r in list(prof.items())[:6]) + ".")
    return notes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel-dir", default=None,
                        help=f"folder of prebuilt kernels (default: ${kernels.KERNEL_DIR_ENV}, else build here)")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--steps", type=int, default=100, help="decode steps per round and path")
    parser.add_argument("--quick", action="store_true", help="a few rounds only")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 3, 5
    if not torch.cuda.is_available():
        raise SystemExit("python -m bench.gpu needs CUDA")
    os.makedirs(args.out, exist_ok=True)
    result = dict(info=report.environment(), command=report.command_line("bench.gpu", argv), tables={}, notes=[],
                  method=f"Host time: median over {args.rounds} interleaved rounds of bursts of {BURST} calls, the "
                         f"device synchronized before each burst; decode chain: {args.steps} synchronized steps "
                         "per round (CUDA events).")
    mod = kernels.named_kernel(SEED["name"], args.kernel_dir)
    ts = kernels.seed_gemv_args(SEED["n"], SEED["k"], device="cuda")
    err = check_output(lambda: tvmfast.bind(mod)(*ts), ts, "tvmfast")
    result["notes"].append(f"The ported kernel matches the torch reference (largest error {err:.1e} of the largest "
                           "output).")
    lib = None
    if shutil.which("nvcc"):
        lib = optional(result, "nvcc library", lambda: nvcc_library(ts, args.kernel_dir))
    else:
        result["notes"].append("nvcc not found: the nvcc-library and raw cuLaunchKernel rows are missing.")
    parts = [(TABLE_SEED, lambda: seed_table(mod, ts, args, result, lib)),
             (TABLE_DYN, lambda: dynamic_profile(mod, ts, args, lib)),
             (TABLE_CHAIN, lambda: decode_chain(mod, args, args.out, result))]
    for title, run in parts:
        try:
            result["tables"].update(run())
        except Exception:  # keep what was measured; say what failed
            result["notes"].append(f"{title}: failed:\n\n```\n{traceback.format_exc()}```")
            traceback.print_exc()
        with open(os.path.join(args.out, "results_gpu.json"), "w") as fh:
            json.dump(result, fh, indent=1)
    result["notes"] = findings(result) + result["notes"]
    print(write(result, args.out))
    print(report.written(args.out, "gpu"))
    return result


def write(result, out_dir) -> str:
    """results_gpu.{json,md} and chart_gpu.png of a result (also to redraw a saved one)."""
    panels = [dict(title=title, bars=result["tables"][title], log=log, color=color, xlabel=xlabel)
              for title, log, color, xlabel in (
                  (TABLE_SEED, True, "tab:green", "us per call (host; kernel: GPU), log scale"),
                  (TABLE_DYN, False, "tab:orange", "host us per call"),
                  (TABLE_CHAIN, False, "tab:purple", "us per GEMV")) if title in result["tables"]]
    return report.write(result, out_dir, "gpu", COLUMNS, panels)


if __name__ == "__main__":
    main()
