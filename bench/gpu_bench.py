"""GPU side of the harness: every call path on CUDA kernels, host time per call and
synchronized throughput, the raw cuLaunchKernel floor, and CUDA-graph replay.

    python bench/gpu_bench.py KERNEL_DIR OUT_DIR [FLOOR_JSON]

KERNEL_DIR comes from bench/gpu_prepare.py; FLOOR_JSON is the output of gpu_floor.cu.
"""
import datetime
import json
import os
import statistics
import sys
import time
import timeit

if os.environ.get("TVMFAST_PRELOAD"):  # on the GPU machine: load TVM's CUDA runtime first
    __import__(os.environ["TVMFAST_PRELOAD"])

import torch  # noqa: E402
import tvm_ffi  # noqa: E402

import tvmfast
from tvmfast import _core, kernels

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BURST = 256  # calls per timed burst: well inside CUDA's launch queue
ROUNDS = int(os.environ.get("TVMFAST_GPU_ROUNDS", "41"))


def load(folder, name):
    return tvm_ffi.load_module(os.path.abspath(os.path.join(folder, name + ".so")))


def paths_for(rt_mod, ts, frozen_positions):
    """The harness's call paths (no ctypes: it fills CPU DLTensors only) plus the custom op."""
    paths, env, prepared = harness.call_paths(rt_mod, ts, frozen_positions, with_ctypes=False)
    op = tvmfast.bind(rt_mod).as_torch_op(f"tvmfast_gpu_bench::op{len(ts)}", mutates_args=(len(ts) - 1,),
                                          example_args=ts)
    env["op"] = op
    paths["10 torch custom op"] = f"op({', '.join(f't{i}' for i in range(len(ts)))})"
    return paths, env, prepared


def time_paths(paths, env, prepared, rounds, sync_calls):
    timers = {n: timeit.Timer(s, globals=env) for n, s in paths.items()}
    host = {n: [] for n in list(paths) + ["9 C loop floor"]}
    sync = {n: [] for n in host}
    for t in timers.values():
        t.timeit(BURST)
    torch.cuda.synchronize()
    for _ in range(rounds):
        for name, t in timers.items():
            torch.cuda.synchronize()
            host[name].append(t.timeit(BURST) / BURST * 1e6)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            t.timeit(sync_calls)
            torch.cuda.synchronize()
            sync[name].append((time.perf_counter() - t0) / sync_calls * 1e6)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        _core._floor_loop(prepared, BURST)
        host["9 C loop floor"].append((time.perf_counter() - t0) / BURST * 1e6)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        _core._floor_loop(prepared, sync_calls)
        torch.cuda.synchronize()
        sync["9 C loop floor"].append((time.perf_counter() - t0) / sync_calls * 1e6)
    floor = statistics.median(host["9 C loop floor"])
    ref = statistics.median(host["3 tvm_ffi f(*torch)"])
    return {n: dict(host_us=statistics.median(host[n]), sync_us=statistics.median(sync[n]),
                    host_vs_tvm_ffi=statistics.median(host[n]) / ref,
                    host_vs_floor=statistics.median(host[n]) / floor) for n in host}


def graph_chain(rt_mod, rounds=20):
    """16 prepared tiny-add calls: eager vs captured-and-replayed, us per kernel."""
    f = tvmfast.bind(rt_mod)
    xs = [torch.zeros(1024, device="cuda") for _ in range(17)]
    y = torch.randn(1024, device="cuda")
    chain = [f.prepare(xs[i], y, xs[i + 1]) for i in range(16)]
    for p in chain:
        p()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for p in chain:
            p()
    eager, replay = [], []
    for _ in range(rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            for p in chain:
                p()
        torch.cuda.synchronize()
        eager.append((time.perf_counter() - t0) / (20 * 16) * 1e6)
        t0 = time.perf_counter()
        for _ in range(20):
            g.replay()
        torch.cuda.synchronize()
        replay.append((time.perf_counter() - t0) / (20 * 16) * 1e6)
    return dict(eager_us_per_kernel=statistics.median(eager), replay_us_per_kernel=statistics.median(replay),
                ratio=statistics.median(replay) / statistics.median(eager))


def cupy_floor(kernel_dir, rounds=20):
    """A Python loop of cupy RawModule launches of the same CUDA source."""
    try:
        import cupy  # noqa: PLC0415
    except ImportError:
        return None
    with open(os.path.join(kernel_dir, "add_f32_1024.cu")) as fh:
        src = fh.read()
    cfg = json.load(open(os.path.join(kernel_dir, "add_f32_1024.json")))
    mod = cupy.RawModule(code=src, backend="nvcc", options=("-arch=sm_90",))
    kern = mod.get_function(cfg["kernel"])
    a, b, c = (cupy.zeros(cfg["n"], dtype=cupy.float32) for _ in range(3))
    grid, block = (cfg["grid"],), (cfg["block"],)
    for _ in range(100):
        kern(grid, block, (a, b, c))
    cupy.cuda.runtime.deviceSynchronize()
    host = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(BURST):
            kern(grid, block, (a, b, c))
        host.append((time.perf_counter() - t0) / BURST * 1e6)
        cupy.cuda.runtime.deviceSynchronize()
    return dict(host_us=statistics.median(host))


def plot(res, path):
    """Host us/call per path for each GPU workload, and the graph-replay comparison."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    workloads = res["workloads"]
    fig, axes = plt.subplots(1, len(workloads) + 1, figsize=(6 * (len(workloads) + 1), 5))
    for ax, (title, rows) in zip(axes, workloads.items()):
        names = list(rows)
        ax.barh(names, [rows[n]["host_us"] for n in names], color="tab:green")
        ax.invert_yaxis()
        ax.set_xlabel("host us per call (median of bursts)")
        ax.set_title(f"{res['device']}: {title}", fontsize=8)
    g = res["graph_chain_16_tiny_add"]
    axes[-1].bar(["eager", "graph replay"], [g["eager_us_per_kernel"], g["replay_us_per_kernel"]])
    axes[-1].set_ylabel("us per kernel")
    axes[-1].set_title("16 tvmfast calls: eager vs CUDA graph", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    kernel_dir, out_dir = sys.argv[1], sys.argv[2]
    floor_json = sys.argv[3] if len(sys.argv) > 3 else None
    os.makedirs(out_dir, exist_ok=True)
    res = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               device=torch.cuda.get_device_name(0), torch=torch.__version__, tvm_ffi=tvm_ffi.__version__,
               torch_direct_export=None, workloads={})
    tiny = load(kernel_dir, "add_f32_1024")
    a, b, c = (torch.randn(1024, device="cuda") for _ in range(3))
    paths, env, prep = paths_for(tiny, [a, b, c], (0, 1))
    res["workloads"]["tiny add 1024 f32 (3 tensors)"] = time_paths(paths, env, prep, ROUNDS, 2000)
    gemv = load(kernel_dir, "gemv_int4")
    x, w, s, z = kernels.random_int4_gemv_inputs(1024, 1024, device="cuda")
    o = torch.empty(1, 1024, dtype=torch.float16, device="cuda")
    paths, env, prep = paths_for(gemv, [x, w, s, z, o], (1, 2, 3))
    res["workloads"]["seed int4 GEMV 1x1024 fp16 x 1024x1024 int4 (5 tensors)"] = time_paths(paths, env, prep, ROUNDS, 2000)
    res["torch_direct_export"] = _core._torch_direct_export_enabled()
    res["graph_chain_16_tiny_add"] = graph_chain(tiny)
    res["cupy_rawmodule_python_loop"] = cupy_floor(kernel_dir)
    if floor_json and os.path.exists(floor_json):
        res["culaunchkernel_c_loop"] = json.load(open(floor_json))
    with open(os.path.join(out_dir, "results_gpu.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    plot(res, os.path.join(out_dir, "chart_gpu.png"))
    lines = [f"## GPU: {res['date']}, {res['device']}", "",
             f"torch {res['torch']}, apache-tvm-ffi {res['tvm_ffi']}, runtime-only apache-tvm 0.27.0.post1; "
             f"direct torch export: {res['torch_direct_export']}. Host time: median over {ROUNDS} rounds of "
             f"bursts of {BURST} calls (no sync inside a burst); sync: 2000 calls then synchronize.", ""]
    for title, rows in res["workloads"].items():
        lines += [f"### {title}", "", "| path | host us/call | vs tvm_ffi | vs floor | sync us/call |",
                  "|---|---:|---:|---:|---:|"]
        for n, r in rows.items():
            lines.append(f"| {n} | {r['host_us']:.3f} | {r['host_vs_tvm_ffi']:.2f} | {r['host_vs_floor']:.3f} | {r['sync_us']:.3f} |")
        lines.append("")
    gc_ = res["graph_chain_16_tiny_add"]
    lines += ["### CUDA graph: chain of 16 tiny-add kernels (prepared calls)", "",
              f"eager {gc_['eager_us_per_kernel']:.3f} us/kernel, replay {gc_['replay_us_per_kernel']:.3f} us/kernel, "
              f"ratio {gc_['ratio']:.3f} (P4-graph target <= 0.333)", ""]
    if res.get("culaunchkernel_c_loop"):
        r = res["culaunchkernel_c_loop"]
        lines.append(f"Raw cuLaunchKernel C loop (tiny add): {r['host_us_per_launch_burst256_median']:.3f} us host "
                     f"per launch in bursts, {r['sync_us_per_launch']:.3f} us synchronized.")
    if res.get("cupy_rawmodule_python_loop"):
        lines.append(f"cupy RawModule Python loop (tiny add): {res['cupy_rawmodule_python_loop']['host_us']:.3f} us host per launch.")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "results_gpu.md"), "w") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
