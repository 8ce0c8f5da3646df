"""Reporting for the CPU and GPU benchmarks: the environment, Markdown tables, JSON, the PNG
chart; and every committed figure generated from the saved results.

    python -m bench.report        # rewrite bench/RESULTS.md and the figures in README.md and docs/

Each figure is committed once, in ``bench/results/results_<tag>.json`` (a run of
``python -m bench.harness`` or ``python -m bench.gpu``, copied there); everything that quotes one
is generated from it: bench/RESULTS.md (its tables, then the prose of bench/RESULTS_NOTES.md with
``{{name}}`` replaced by the figure :func:`figures` names so), and the blocks between
``<!-- name -->`` and ``<!-- /name -->`` markers in README.md and docs/*.md (:func:`blocks`).

A result is a dict: ``info`` (:func:`environment`), ``command``, ``method`` (how it was
timed), ``tables`` (title -> rows, a row being name -> {"median", "p25", "p75", ...}) and
``notes`` (Markdown paragraphs), plus whatever a benchmark adds.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")


def cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's "model name" (Linux x86_64), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "CPU model unknown"


def environment() -> dict:
    """Date, machine, versions, and whether torch tensors take tvmfast's direct export."""
    import torch  # noqa: PLC0415
    import tvm_ffi  # noqa: PLC0415

    import tvmfast  # noqa: PLC0415
    from tvmfast import _core  # noqa: PLC0415

    try:
        import tvm  # noqa: PLC0415

        tvm_version = tvm.__version__
    except ImportError:
        tvm_version = None
    info = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, {platform.platform()}",
        python=platform.python_version(), torch=torch.__version__, tvm=tvm_version,
        tvm_ffi=tvm_ffi.__version__, tvmfast=tvmfast.__version__,
        torch_direct_export=_core._torch_direct_export_state())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def bench_parser(module: str, doc: str, out: str, rounds: int) -> argparse.ArgumentParser:
    """The options the GPU-capable benchmarks share: --out, --rounds, --kernel-dir, --cpu-only."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=out)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--kernel-dir", default=os.environ.get("TVMFAST_KERNEL_DIR"),
                        help="prebuilt CUDA kernels (python -m bench.kernels DIR) instead of building them here")
    parser.add_argument("--cpu-only", action="store_true")
    return parser


# Options whose values are this run's own folders: recorded as placeholders.
PLACEHOLDERS = {"--out": "DIR", "--kernel-dir": "KERNELS"}


def command_line(module: str, argv) -> str:
    """The command a run was made with, its folders written as placeholders."""
    args = sys.argv[1:] if argv is None else list(argv)
    shown = []
    for arg in args:
        option, eq, _ = arg.partition("=")
        if eq and option in PLACEHOLDERS:
            arg = f"{option}={PLACEHOLDERS[option]}"
        elif shown and shown[-1] in PLACEHOLDERS:
            arg = PLACEHOLDERS[shown[-1]]
        shown.append(arg)
    return " ".join(["python -m", module, *shown])


def describe(result: dict) -> str:
    """One paragraph: where and how a result was measured."""
    i = result["info"]
    where = f"{i['gpu']} (CUDA {i['cuda']}), host {i['machine']}" if i.get("gpu") else i["machine"]
    return (f"Measured {i['date']} on {where}; Python {i['python']}, torch {i['torch']}, "
            f"apache-tvm {i['tvm'] or '(runtime only)'}, apache-tvm-ffi {i['tvm_ffi']}, tvmfast {i['tvmfast']} "
            f"(direct torch export: {i['torch_direct_export']}). Command: `{result['command']}`. "
            f"{result['method']}")


def fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: dict, columns) -> str:
    """``columns``: (header, key) pairs; key "name" is the row's name, "spread" its 25-75%."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "|".join("---" if k == "name" else "---:" for _, k in columns) + "|"]
    for name, row in rows.items():
        cells = []
        for _, key in columns:
            if key == "name":
                cells.append(name)
            elif key == "spread":
                cells.append(f"{fmt(row.get('p25'))}-{fmt(row.get('p75'))}" if "p25" in row else "-")
            else:
                cells.append(fmt(row.get(key)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(path: str, panels, title: str | None = None) -> None:
    """One PNG of side-by-side panels. A panel is a dict: ``title``, ``xlabel`` and either
    ``bars`` (name -> row with median/p25/p75: horizontal bars with the 25-75% spread; ``log``
    for a log axis) or ``lines`` (``x`` values and name -> y values)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cols = min(len(panels), 2)
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(8 * cols, 5 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        if "bars" in panel:
            rows = panel["bars"]
            names = list(rows)
            med = [rows[n]["median"] for n in names]
            err = [[m - rows[n].get("p25", m) for n, m in zip(names, med)],
                   [rows[n].get("p75", m) - m for n, m in zip(names, med)]]
            ax.barh(names, med, xerr=err, color=panel.get("color", "tab:blue"))
            ax.invert_yaxis()
            for y, m in enumerate(med):
                ax.annotate(f"{m:.3g}", (m, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
            if panel.get("log"):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.tick_params(axis="y", labelsize=8)
        else:
            for name, ys in panel["lines"].items():
                ax.plot(panel["x"], ys, marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_ylabel(panel.get("ylabel", ""))
            ax.legend(fontsize=8)
        ax.set_xlabel(panel["xlabel"])
        ax.set_title(panel["title"], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(result: dict, out_dir: str, tag: str, columns, panels) -> str:
    """results_<tag>.json, results_<tag>.md and chart_<tag>.png in ``out_dir``; returns the Markdown
    (:func:`written` says where the files went)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"results_{tag}.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    text = markdown(result, tag, columns)
    with open(os.path.join(out_dir, f"results_{tag}.md"), "w") as fh:
        fh.write(text)
    chart(os.path.join(out_dir, f"chart_{tag}.png"), panels,
          title=f"tvmfast {tag.upper()} benchmark, {result['info'].get('gpu') or result['info']['machine']}")
    return text


def written(out_dir: str, tag: str) -> str:
    """The lines a benchmark prints last: where its files are, and how to make them the project's."""
    out = os.path.abspath(out_dir)
    return (f"Wrote results_{tag}.json, results_{tag}.md and chart_{tag}.png to {out}\n"
            f"To make them the project's figures: cp {out}/results_{tag}.json {out}/chart_{tag}.png "
            f"{os.path.relpath(RESULTS)}/ && python -m bench.report")


def markdown(result: dict, tag: str, columns) -> str:
    lines = [f"## {tag.upper()}", "", describe(result), ""]
    for title, rows in result["tables"].items():
        lines += [f"### {title}", "", markdown_table(rows, columns.get(title, columns["default"])), ""]
    for note in result.get("notes", []):
        lines += [note, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Targets: the goal is part of a target's name ("tvmfast prepared / the floor <= 1.25").
# ---------------------------------------------------------------------------------------------
def judge(name: str, value) -> tuple[str, str]:
    """(goal, "met" | "missed") of a target named ``... <= X`` or ``... >= X``; ("-", "-") for a
    figure given for comparison only."""
    m = re.search(r"(<=|>=)\s*([0-9.]+)\s*$", name)
    if m is None or value is None:
        return "-", "-"
    goal = float(m.group(2))
    met = value <= goal if m.group(1) == "<=" else value >= goal
    return f"{m.group(1)} {m.group(2)}", "met" if met else "missed"


def target_rows(targets: dict) -> dict:
    """The Targets table: name -> value, goal, met/missed."""
    rows = {}
    for name, value in targets.items():
        goal, verdict = judge(name, value)
        rows[name] = {"value": value, "goal": goal, "met": verdict}
    return rows


TARGET_COLUMNS = [("target", "name"), ("value", "value"), ("goal", "goal"), ("met?", "met")]

# bench.matrix: one row per argument kind, tvm_ffi's call against tvmfast's
MATRIX_TITLE = "Argument kinds"
MATRIX_COLUMNS = [("argument kind -> function", "name"), ("tvm_ffi gives", "returns"), ("tvm_ffi (us)", "tvm_ffi"),
                  ("tvmfast dynamic (us)", "dynamic"), ("tvmfast prepared (us)", "prepared"),
                  ("dynamic / tvm_ffi", "dynamic_vs_ref"), ("prepared / tvm_ffi", "prepared_vs_ref"),
                  ("same outcome", "same")]


# ---------------------------------------------------------------------------------------------
# Saved results, as the current code names their rows.
# ---------------------------------------------------------------------------------------------
DYNAMIC, HOLD = "tvmfast dynamic", "tvmfast dynamic, release_gil=False"
LEGACY_RELEASE = "tvmfast dynamic, release_gil=True"
LEGACY_NOTE = ("Measured when tvmfast held the GIL by default: the row `tvmfast dynamic` is the call with the "
               "GIL released (today's default; `release_gil=True` then); the `release_gil=False` rows held it, as "
               "did every other tvmfast figure of the run (its other tables, the targets it computed, its own "
               "notes, which call the GIL-holding call `tvmfast dynamic`).")


def load(path: str) -> dict:
    """A saved result, its rows named as today's benchmarks name them.

    Runs made when tvmfast held the GIL by default have a row ``tvmfast dynamic, release_gil=True``
    (the call with the GIL released, today's default): that row becomes ``tvmfast dynamic`` and
    the call paths that held the GIL (dynamic, frozen, prepared, call_ptrs) get
    ``, release_gil=False``; ``legacy_gil`` is set."""
    with open(path) as fh:
        result = json.load(fh)
    for title, rows in result["tables"].items():
        if LEGACY_RELEASE not in rows:
            continue
        renamed = {}
        for name, row in rows.items():
            if name == LEGACY_RELEASE:
                name = DYNAMIC
            elif name in (DYNAMIC, "tvmfast frozen", "tvmfast prepared", "tvmfast prepared.call_ptrs"):
                name = f"{name}, release_gil=False"
            renamed[name] = row
        result["tables"][title] = renamed
        result["legacy_gil"] = True
    return result


def saved_results(results_dir: str = RESULTS) -> dict:
    """tag -> result of every results_<tag>.json, cpu and gpu first."""
    found = {os.path.basename(p)[len("results_"):-len(".json")]: p
             for p in glob.glob(os.path.join(results_dir, "results_*.json"))}
    order = sorted(found, key=lambda tag: ({"cpu": 0, "gpu": 1}.get(tag, 2), tag))
    return {tag: load(found[tag]) for tag in order}


# ---------------------------------------------------------------------------------------------
# Named figures: what the prose and the README/docs blocks quote.
# ---------------------------------------------------------------------------------------------
REF, FLOOR = "tvm_ffi f(*torch)", "C loop floor"
PRECONVERTED = "rt_mod['main'](*tvm tensors)"  # the function looked up once, the tensors converted once
RT_MOD_TORCH = "rt_mod(*torch tensors)"  # the plain drop-in: rt_mod(a, b, out)
DEF_FLOOR = "Python-call floor: a bare Cython def method making the same call"
OP = "torch custom op (as_torch_op)"


def _table(result: dict, start: str) -> dict:
    return next((rows for title, rows in result["tables"].items() if title.startswith(start)), {})


def cpu_figures(cpu: dict) -> dict:
    add, big = _table(cpu, "add, 3 tensors of 128 "), _table(cpu, "add, 3 tensors of 4096 ")
    t = cpu.get("targets", {})
    dyn, hold, ref, floor = add[DYNAMIC], add.get(HOLD), add[REF], add[FLOOR]
    prepared = add.get("tvmfast prepared") or add["tvmfast prepared, release_gil=False"]
    f = {
        "cpu_date": cpu["info"]["date"], "cpu_machine": cpu["info"]["machine"].split(", Linux")[0],
        "cpu_torch": cpu["info"]["torch"], "cpu_python": cpu["info"]["python"],
        "cpu_dynamic_us": f"{dyn['median']:.3f}", "cpu_ref_us": f"{ref['median']:.3f}",
        "cpu_floor_us": f"{floor['median']:.3f}", "cpu_op_us": f"{add[OP]['median']:.2f}",
        "cpu_dynamic_over_us": f"{dyn['over_floor']:.3f}", "cpu_ref_over_us": f"{ref['over_floor']:.3f}",
        "cpu_dynamic_share": f"{dyn['over_floor'] / ref['over_floor']:.2f}",
        "cpu_prepared_us": f"{prepared['median']:.3f}",
        "cpu_prepared_vs_floor": f"{prepared['vs_floor']:.1f}",
        "cpu_def_floor_us": f"{add[DEF_FLOOR]['median']:.3f}",
        "cpu_def_floor_vs_floor": f"{add[DEF_FLOOR]['vs_floor']:.1f}",
        "cpu_prepared_vs_def_floor": f"{prepared['median'] / add[DEF_FLOOR]['median']:.1f}",
    }
    if big:
        big_prepared = big.get("tvmfast prepared") or big["tvmfast prepared, release_gil=False"]
        f["cpu_prepared_vs_floor_4096"] = f"{big_prepared['vs_floor']:.1f}"
    if hold is not None:
        f["cpu_hold_us"] = f"{hold['median']:.3f}"
        f["cpu_hold_over_us"] = f"{hold['over_floor']:.3f}"
        f["cpu_hold_share"] = f"{hold['over_floor'] / ref['over_floor']:.2f}"
        gil = [(rows[DYNAMIC]["median"] - rows[HOLD]["median"]) * 1e3 for rows in (add, big) if HOLD in rows]
        f["cpu_gil_ns"] = f"{min(gil):.0f}-{max(gil):.0f}" if len(gil) > 1 else f"{gil[0]:.0f}"
    m = re.search(r"(\d+) interleaved rounds of (\d+) calls", cpu["method"])
    if m:
        f["cpu_rounds"], f["cpu_number"] = m.group(1), f"{int(m.group(2)):,}"
    spreads = [(row["p75"] - row["p25"]) / row["median"] * 100 for row in add.values() if "p25" in row]
    f["cpu_spread_min_pct"], f["cpu_spread_max_pct"] = f"{min(spreads):.0f}", f"{max(spreads):.0f}"
    if PRECONVERTED in add:
        f["cpu_preconverted_us"] = f"{add[PRECONVERTED]['median']:.3f}"
        f["cpu_reexport_ratio"] = f"{dyn['median'] / add[PRECONVERTED]['median']:.2f}"
    if hold is not None:
        # the least share of tvm_ffi's overhead a safe call can have: the Python-call floor plus the GIL
        gil_us = dyn["median"] - hold["median"]
        f["cpu_least_share"] = f"{(add[DEF_FLOOR]['over_floor'] + gil_us) / ref['over_floor']:.2f}"
    # targets, by today's names or those of runs made before they were spelled out
    for key, names in (("cpu_p1", ("tvmfast dynamic's time above the floor", "P1 ")),
                       ("cpu_ns_per_tensor", ("ns per further tensor, tvmfast", "P3 ns per extra tensor")),
                       ("cpu_ref_ns_per_tensor", ("ns per further tensor, tvm_ffi", "P3 same for tvm_ffi"))):
        value = next((v for k, v in t.items() if k.startswith(names)), None)
        if value is not None:
            f[key] = f"{value:.0f}" if "ns" in key else f"{value:.2f}"
    return f


def compared(a: dict, b: dict, what_a: str, what_b: str) -> str:
    """Words for row ``a`` against row ``b`` (medians, us): more, less, or within the 25-75% spreads."""
    diff = a["median"] - b["median"]
    if "p25" in a and "p25" in b and a["p25"] <= b["p75"] and b["p25"] <= a["p75"]:
        return f"{what_a} and {what_b} are within each other's 25-75% spreads ({abs(diff):.2f} us apart)"
    return f"{what_a} costs {abs(diff):.2f} us {'more' if diff > 0 else 'less'} than {what_b}"


GPU_SEED = "The thread's table"
GPU_DYN = "Where a dynamic call's host time goes"
GPU_CHAIN = "Decode chain"
NVCC = "nvcc library via ctypes, data_ptr() per call"
KERNEL = "kernel GPU time (CUPTI)"
GRAPH = "CUDA graph replay, per kernel"


def gpu_figures(gpu: dict) -> dict:
    seed, dyn, chain = _table(gpu, GPU_SEED), _table(gpu, GPU_DYN), _table(gpu, GPU_CHAIN)
    floor, kernel = seed[FLOOR]["median"], seed[KERNEL]["median"]
    prepared = seed.get("tvmfast prepared") or seed["tvmfast prepared, release_gil=False"]
    frozen = seed.get("tvmfast frozen") or seed["tvmfast frozen, release_gil=False"]
    f = {
        "gpu_name": gpu["info"]["gpu"].replace(" 80GB HBM3", ""), "gpu_date": gpu["info"]["date"][:10],
        "gpu_torch": gpu["info"]["torch"],
        "gpu_kernel_us": f"{kernel:.2f}", "gpu_floor_us": f"{floor:.2f}",
        "gpu_dynamic_us": f"{seed[DYNAMIC]['median']:.2f}", "gpu_dynamic_vs_floor": f"{seed[DYNAMIC]['vs_floor']:.3f}",
        "gpu_frozen_vs_floor": f"{frozen['vs_floor']:.3f}", "gpu_prepared_us": f"{prepared['median']:.2f}",
        "gpu_prepared_vs_floor": f"{prepared['vs_floor']:.3f}",
        "gpu_ref_us": f"{seed[REF]['median']:.2f}", "gpu_ref_vs_floor": f"{seed[REF]['vs_floor']:.3f}",
        "gpu_rt_mod_us": f"{seed['rt_mod(*tvm tensors)']['median']:.2f}",
        "gpu_graph_us": f"{seed[GRAPH]['median']:.2f}", "gpu_graph_vs_kernel": f"{seed[GRAPH]['median'] / kernel:.2f}",
        "gpu_margin_108_us": f"{0.08 * floor:.2f}",  # what 1.08x the C floor leaves above it
    }
    if OP in seed:
        f["gpu_op_us"] = f"{seed[OP]['median']:.2f}"
    if PRECONVERTED in seed:
        f["gpu_preconverted_us"] = f"{seed[PRECONVERTED]['median']:.2f}"
        f["gpu_reexport_ratio"] = f"{seed[DYNAMIC]['median'] / seed[PRECONVERTED]['median']:.2f}"
    if HOLD in seed:
        f["gpu_hold_vs_floor"] = f"{seed[HOLD]['vs_floor']:.3f}"
        f["gpu_gil_us"] = f"{seed[DYNAMIC]['median'] - seed[HOLD]['median']:.2f}"
    if NVCC in seed:
        f["gpu_nvcc_us"] = f"{seed[NVCC]['median']:.2f}"
        f["gpu_nvcc_vs_dynamic"] = f"{seed[NVCC]['median'] / seed[DYNAMIC]['median']:.2f}"
    if "raw cuLaunchKernel C loop" in seed:
        raw = seed["raw cuLaunchKernel C loop"]["median"]
        f["gpu_culaunch_us"] = f"{raw:.2f}"
        f["gpu_tvm_launch_over_raw_us"] = f"{floor - raw:.2f}"
    if dyn:
        over = {name: row.get("over_floor") for name, row in dyn.items()}
        f.update({
            "gpu_ablation_floor_us": f"{dyn[FLOOR]['median']:.2f}",
            "gpu_def_floor_over_us": f"{over[DEF_FLOOR]:.2f}",
            "gpu_def_floor_vs_floor": f"{dyn[DEF_FLOOR]['median'] / dyn[FLOOR]['median']:.3f}",
            "gpu_prepared_over_def_us": f"{over['tvmfast prepared'] - over[DEF_FLOOR]:.2f}",
            "gpu_dynamic_vs_prepared": compared(dyn["tvmfast dynamic, torch tensors"], dyn["tvmfast prepared"],
                                                "the dynamic call", "the prepared one"),
            "gpu_ffi_tensors_over_us": f"{next(v for n, v in over.items() if 'tvm_ffi tensors' in n):.2f}",
        })
    if chain:
        title = next(t for t in gpu["tables"] if t.startswith(GPU_CHAIN))
        gemvs = int(re.search(r"(\d+) GEMVs", title).group(1))
        graph = chain["torch.cuda.graph of the dynamic calls"]
        compiled = chain["torch.compile reduce-overhead"]
        captured = next(r for n, r in chain.items() if n.startswith("torch.compile (no CUDA graphs)"))
        f.update({
            "chain_graph_us": f"{graph['median']:.2f}", "chain_graph_vs_kernel": f"{graph['vs_kernel']:.2f}",
            "chain_dynamic_us": f"{chain['eager tvmfast dynamic']['median']:.2f}",
            "chain_prepared_us": f"{chain['eager tvmfast prepared']['median']:.2f}",
            "chain_module_us": f"{chain['eager nn.Module, custom op']['median']:.1f}",
            "chain_compiled_us": f"{compiled['median']:.2f}", "chain_compiled_vs_graph": f"{compiled['vs_graph']:.1f}",
            # per step: the compiled module's call, and the GPU work of its kernels
            "chain_gemvs": f"{gemvs}", "chain_compiled_step_us": f"{compiled['median'] * gemvs:.0f}",
            "chain_kernels_step_us": f"{compiled['median'] / compiled['vs_kernel'] * gemvs:.0f}",
            "chain_captured_us": f"{captured['median']:.2f}", "chain_captured_vs_graph": f"{captured['vs_graph']:.2f}",
        })
        for key, name in (("chain_stacked_us", "stacked buffers"), ("chain_no_trees_us", "cudagraph_trees=False"),
                          ("chain_static_us", "input marked static"), ("chain_no_guards_us", "guard evaluation")):
            row = next((r for n, r in chain.items() if name in n), None)
            if row is not None:
                f[key] = f"{row['median']:.2f}"
    return f


def gpu_targets(gpu: dict) -> dict:
    """The GPU targets of this release, from the thread's table and the decode chain."""
    seed, chain = _table(gpu, GPU_SEED), _table(gpu, GPU_CHAIN)
    t = {}
    if NVCC in seed:
        t["tvmfast dynamic, times faster than the thread's nvcc library >= 1.2"] = round(
            seed[NVCC]["median"] / seed[DYNAMIC]["median"], 3)
    t["CUDA graph replay per GEMV / kernel GPU time <= 1.1"] = round(seed[GRAPH]["median"] / seed[KERNEL]["median"], 3)
    t["tvmfast dynamic / C floor <= 1.05"] = round(seed[DYNAMIC]["vs_floor"], 3)
    prepared = seed.get("tvmfast prepared") or seed["tvmfast prepared, release_gil=False"]
    t["tvmfast prepared / C floor <= 1.02"] = round(prepared["vs_floor"], 3)
    if chain:
        captured = next(r for n, r in chain.items() if n.startswith("torch.compile (no CUDA graphs)"))
        t["decode chain, torch.compile then one torch.cuda.graph capture / the graph <= 1.5"] = round(
            captured["vs_graph"], 3)
        t["decode chain, torch.compile reduce-overhead / the graph (for comparison)"] = round(
            chain["torch.compile reduce-overhead"]["vs_graph"], 3)
    return t


CUTE_CALL = "CuTe's own call compiled(*args)"


def cute_figures(cute: dict) -> dict:
    """CuTe DSL kernels: tvmfast against CuTe's own call, for the 3- and 9-tensor kernels."""
    f = {"cute_date": cute["info"]["date"][:10]}
    for key, start in (("cute3", "CuTe DSL elementwise kernel, 3 tensors"),
                       ("cute9", "CuTe DSL elementwise kernel, 9 tensors")):
        rows = _table(cute, start)
        if not rows:
            continue
        own, floor = rows[CUTE_CALL]["median"], rows[FLOOR]["median"]
        f.update({
            f"{key}_own_us": f"{own:.2f}", f"{key}_dynamic_us": f"{rows[DYNAMIC]['median']:.2f}",
            f"{key}_prepared_us": f"{rows['tvmfast prepared']['median']:.2f}", f"{key}_floor_us": f"{floor:.2f}",
            f"{key}_def_floor_us": f"{rows[DEF_FLOOR]['median']:.2f}",
            f"{key}_dynamic_x": f"{own / rows[DYNAMIC]['median']:.2f}",
            f"{key}_prepared_x": f"{own / rows['tvmfast prepared']['median']:.2f}",
            f"{key}_floor_x": f"{own / floor:.2f}", f"{key}_def_floor_x": f"{own / rows[DEF_FLOOR]['median']:.2f}",
        })
    return f


REST_STAGE = "the rest: Python's call into tvmfast and back, count checks"  # bench.stages' row names
# the stage that releases the call's tensors: its own row in older runs, with the restore and settle since
RELEASE_STAGES = ("release the call's tensors", "restore the environment, settle copies, release the call's tensors")


def stage_figures(stages: dict, key: str) -> dict:
    """bench.stages: where a dynamic call's time goes (us, 3 decimals), from its first table."""
    rows = next(iter(stages["tables"].values()))
    us = {name: row["median"] for name, row in rows.items()}
    gil = us["release the GIL"] + us["take the GIL back"]
    whole, call = us["whole call (stamps removed)"], us["TVMFFIFunctionCall"]
    f = {}
    echo = _table(stages, "Stages of one call: CPU, testing.echo")
    if echo:
        stage = next(n for n in ("convert the result", "restore the environment, convert the result") if n in echo)
        f[f"{key}_echo_result_us"] = f"{echo[stage]['median']:.2f}"
    return f | {f"{key}_date": stages["info"]["date"][:10], f"{key}_gil_us": f"{gil:.3f}",
            f"{key}_convert_us": f"{us['convert the arguments']:.3f}", f"{key}_rest_us": f"{us[REST_STAGE]:.3f}",
            f"{key}_above_us": f"{whole - call:.3f}", f"{key}_gil_share": f"{gil / (whole - call):.2f}",
            f"{key}_devices_us": f"{us['devices, stream, misaligned copies']:.3f}",
            f"{key}_release_us": f"{us[next(n for n in RELEASE_STAGES if n in us)]:.3f}"}


# bench.torch_op's row names
TOP_OP, TOP_ALIAS = "tvmfast op (as_torch_op), eager", "torch.ops.aten.alias (a C++ op that does nothing)"
TOP_CPP, TOP_COMPILED_OP, TOP_COMPILED_CPP = ("TORCH_LIBRARY C++ op (cpp_extension), eager",
                                              "16-GEMV module, torch.compile: tvmfast op",
                                              "16-GEMV module, torch.compile: C++ op")


def torch_op_figures(result: dict, key: str) -> dict:
    """bench.torch_op: the op's eager call against aten.alias on the host's CPU, and on the GPU
    against a TORCH_LIBRARY C++ op launching the same kernel (eager, and compiled)."""
    i = result["info"]
    f = {f"{key}_date": i["date"][:10], f"{key}_host": i["machine"].split(", Linux")[0]}
    cpu = next((rows for title, rows in result["tables"].items()
                if title.startswith("CPU: ") and TOP_ALIAS in rows and TOP_OP in rows), None)
    if cpu:
        title = next(t for t, rows in result["tables"].items() if rows is cpu)
        f[f"{key}_cpu_what"] = title[len("CPU: "):].split(", eager op calls")[0]
        f[f"{key}_vs_alias"] = f"{cpu[TOP_OP]['median'] / cpu[TOP_ALIAS]['median']:.2f}"
    eager = _table(result, "Seed int4 GEMV on the GPU, eager")
    compiled = _table(result, "Seed int4 GEMV on the GPU, 16")
    if eager:
        f[f"{key}_gpu"] = i["gpu"].replace(" 80GB HBM3", "")
        f[f"{key}_vs_cpp"] = f"{eager[TOP_OP]['median'] / eager[TOP_CPP]['median']:.2f}"
    if compiled:
        op, cpp = compiled[TOP_COMPILED_OP]["median"], compiled[TOP_COMPILED_CPP]["median"]
        f.update({f"{key}_compiled_us": f"{op:.2f}", f"{key}_compiled_cpp_us": f"{cpp:.2f}",
                  f"{key}_compiled_vs_cpp": f"{op / cpp:.2f}"})
    return f


def figures(results: dict) -> dict:
    """name -> text of every figure the prose and the README/docs blocks quote."""
    f = {}
    for tag, key in (("stages_cpu", "stcpu"), ("stages_gpu", "stgpu")):
        if tag in results:
            f.update(stage_figures(results[tag], key))
    if "cpu" in results:
        f.update(cpu_figures(results["cpu"]))
    if "gpu" in results:
        f.update(gpu_figures(results["gpu"]))
    if "cute" in results:
        f.update(cute_figures(results["cute"]))
    for tag, key in (("torch_op_cpu", "topcpu"), ("torch_op_gpu", "topgpu")):
        if tag in results:
            f.update(torch_op_figures(results[tag], key))
    return f


def fill(text: str, figs: dict, where: str) -> str:
    """``text`` with each ``{{name}}`` replaced by figure ``name`` (an unknown name is an error)."""
    def sub(m):
        if m.group(1) not in figs:
            raise KeyError(f"{where}: no figure {m.group(1)!r} (known: {', '.join(sorted(figs))})")
        return figs[m.group(1)]

    return re.sub(r"\{\{(\w+)\}\}", sub, text)


# a figure's prefix -> the result it comes from
FAMILIES = {"cpu": "cpu", "gpu": "gpu", "chain": "gpu", "cute": "cute", "cute3": "cute", "cute9": "cute",
            "stcpu": "stages_cpu", "stgpu": "stages_gpu", "topcpu": "torch_op_cpu", "topgpu": "torch_op_gpu"}


def fill_sections(text: str, figs: dict, results: dict, where: str) -> str:
    """:func:`fill` for each ``## `` section of ``text``; a section that quotes a result not saved
    (GPU figures without results_gpu.json) is left out."""
    sections = re.split(r"(?m)^(?=## )", text)
    kept = []
    for section in sections:
        names = re.findall(r"\{\{(\w+)\}\}", section)
        if any(FAMILIES.get(n.split("_")[0]) not in results for n in names if n not in figs):
            continue
        kept.append(fill(section, figs, where))
    return "".join(kept)


# ---------------------------------------------------------------------------------------------
# bench/RESULTS.md: the tables first (a line of context each), then the prose.
# ---------------------------------------------------------------------------------------------
CONTEXT = {  # a table title's start -> the line that says what the table is
    "add, 3 tensors of 128 ": "The call that tvmfast is about: a kernel too small to hide the call. Every way to "
                              "call it, us per call; *vs tvm_ffi*: time over tvm_ffi's `f(*torch)`; *above floor*: "
                              "minus the floor, a C loop calling `TVMFFIFunctionCall` directly on arguments "
                              "converted once (the least a call can cost).",
    "int4 dequantize + GEMV": "A kernel long enough to hide the call (compare its C loop floor with the add's).",
    "add, 3 tensors of 4096 ": "A larger add: the kernel's own time grows, the call's cost stays.",
    "Argument-count sweep": "us per call against the number of tensor arguments (16 float32 each).",
    "Targets": "This release's CPU targets, as measured (the goal is in the name; the floor is the C loop, which "
               "no call made from Python reaches: see the prose).",
    GPU_SEED: "The int4-dequantize GEMV of the Apache TVM Discuss thread \"Strange overhead of "
              "tvm.runtime.ndarray.from_dlpack\", every path in one process; host time per call (kernel row: GPU "
              "time; graph replay: per kernel of a replayed graph), next to the thread's own A100 figures.",
    GPU_DYN: "The dynamic call's host time above the C floor, taken apart (a second interleaved set in the same run).",
    "C loops of the single steps": "Single steps of a dynamic call, each in a C loop.",
    "Raw cuLaunchKernel": "Does CPU work between launches slow the launch itself? (the cold-cache effect).",
    GPU_CHAIN: "A decode-style step of 16 GEMVs with different weights: eager, graphed, compiled.",
    "CPU self time per step": "torch.profiler's CPU self time per step, by event (top 12).",
    "GPU targets": "This release's GPU targets, computed from the tables above.",
    "Stages of one call": "One call taken apart by a build that stamps a clock between its stages "
                          "(`python -m bench.stages`): us per call, the stamps' own cost removed, so the small "
                          "stages are approximate to a few ns; compare the stages with each other, not with the "
                          "other tables (the stamps slow the whole call).",
    f"{MATRIX_TITLE}: tensors": "Every argument kind tvm_ffi takes (`python -m bench.matrix`), us per call: "
                                "tvm_ffi's `fn(*args)`, tvmfast's `f(*args)` and prepared `p()`; *same outcome*: "
                                "tvmfast's result (or error) was checked against tvm_ffi's on the same arguments "
                                "before timing.",
    "CuTe DSL elementwise kernel": "A CuTe DSL kernel (`cute.compile(..., options=\"--enable-tvm-ffi\")`) launched "
                                   "every way, host us per launch; *vs CuTe's call*: time over CuTe's own call.",
    "CPU: ": "`python -m bench.torch_op`: an `as_torch_op` op called eagerly against torch's own ops on this host's "
             "CPU; *vs* the anchor named in the title: time over it.",
    "Seed int4 GEMV on the GPU": "`python -m bench.torch_op`: the thread's int4-dequantize GEMV (the kernel tvmfast "
                                 "started from, as in the GPU tables) as an `as_torch_op` op against a "
                                 "`TORCH_LIBRARY` C++ op launching the same kernel on torch's current stream; *vs* "
                                 "the anchor named in the title: time over it.",
}


def context(title: str) -> str:
    return next((line for start, line in CONTEXT.items() if title.startswith(start)), "")


def columns_for(title: str, rows: dict) -> list:
    """Columns of a saved table: those its rows have, in the benchmarks' order."""
    if title == "Targets" or title == "GPU targets":
        return TARGET_COLUMNS
    if title.startswith(MATRIX_TITLE):
        return MATRIX_COLUMNS
    if title == "Argument-count sweep":
        return [("tensors", "name")] + [(k, k) for k in next(iter(rows.values()))]
    keys = {k for row in rows.values() for k in row}
    cols = [("stage" if title.startswith("Stages of one call") else "path", "name")]
    anchor = re.search(r"anchor: ([^)]+)\)", title)
    vs_ref = (f"vs {anchor.group(1)}" if anchor else "vs CuTe's call" if title.startswith("CuTe DSL")
              else "vs tvm_ffi")
    for header, key in (("us", "median"), ("25-75%", "spread"), (vs_ref, "vs_ref"),
                        ("vs C floor" if "seed_a100" in keys or "work_alone" in keys else "vs floor", "vs_floor"),
                        ("above floor (us)", "over_floor"), ("vs kernel GPU time", "vs_kernel"),
                        ("vs torch.cuda.graph", "vs_graph"), ("the work alone (us)", "work_alone"),
                        ("calls per step", "calls_per_step"), ("thread's A100 (us)", "seed_a100"),
                        ("share of the time above TVMFFIFunctionCall", "share")):
        if key in keys or (key == "spread" and "p25" in keys):
            cols.append((header, key))
    if title.startswith("add, ") or title.startswith("int4 dequantize"):
        cols = [c for c in cols if c[1] != "vs_floor"]
    return cols


def results_markdown(results: dict, notes_path: str, results_dir: str = RESULTS) -> str:
    figs = figures(results)
    out = ["# tvmfast benchmark results", "",
           "Generated by `python -m bench.report` from `bench/results/results_*.json` (edit the prose in "
           "`bench/RESULTS_NOTES.md`, never this file). The tables come first, then what they say; how each "
           "run was made is at the end.", ""]
    for tag, result in results.items():
        i = result["info"]
        where = i.get("gpu") or i["machine"].split(", Linux")[0]
        out += [f"## {tag.upper()}: {where}, {i['date'][:10]}", ""]
        if result.get("legacy_gil"):
            out += [f"*{LEGACY_NOTE}*", ""]
        tables = dict(result["tables"])
        if "targets" in result:
            tables["Targets"] = target_rows(result["targets"])
        if tag == "gpu" and _table(result, GPU_SEED):
            tables = {**{k: v for k, v in tables.items() if not k.startswith("CPU self time")},
                      "GPU targets": target_rows(gpu_targets(result)),
                      **{k: v for k, v in tables.items() if k.startswith("CPU self time")}}
        for title, rows in tables.items():
            line = context(title)
            out += [f"### {title}", ""] + ([line, ""] if line else [])
            out += [markdown_table(rows, columns_for(title, rows)), ""]
    with open(notes_path) as fh:
        out += [fill_sections(fh.read().rstrip(), figs, results, os.path.basename(notes_path)), ""]
    out += ["## How these were measured", ""]
    for tag, result in results.items():
        out += [f"**{tag.upper()}.** {describe(result)}", ""]
        notes = result.get("notes", [])
        if notes:
            out += [f"The {tag.upper()} run's own notes"
                    + (" (written when measured: its `tvmfast dynamic` is the `release_gil=False` row above)"
                       if result.get("legacy_gil") else "") + ":", ""]
            out += [f"> {n}".replace("\n", "\n> ") for n in notes] + [""]
        chart_path = os.path.join(results_dir, f"chart_{tag}.png")
        if os.path.exists(chart_path):
            out += [f"![{tag} chart](results/chart_{tag}.png)", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Blocks in README.md and docs/*.md: <!-- name: written by `python -m bench.report` --> ... <!-- /name -->
# ---------------------------------------------------------------------------------------------
README_ROWS = {  # the README's speed table: CPU add of 128, these paths
    RT_MOD_TORCH: "`rt_mod(a, b, out)` on torch tensors",
    "rt_mod(*tvm tensors)": "`rt_mod(*tvm_tensors)`, tensors converted once",
    PRECONVERTED: "`rt_mod[\"main\"](*tvm_tensors)`, function and tensors converted once",
    REF: "tvm_ffi `f(*torch_tensors)`",
    "ctypes TVMFFIFunctionCall": "ctypes `TVMFFIFunctionCall`, DLTensors filled per call",
    DYNAMIC: "**tvmfast** `f(a, b, out)`",
    HOLD: "**tvmfast** `f(a, b, out)`, `release_gil=False`",
    "tvmfast frozen": "**tvmfast** frozen `g(out)`",
    "tvmfast frozen, release_gil=False": "**tvmfast** frozen `g(out)`, `release_gil=False`",
    "tvmfast prepared": "**tvmfast** prepared `p()`",
    "tvmfast prepared, release_gil=False": "**tvmfast** prepared `p()`, `release_gil=False`",
    OP: "`f.as_torch_op(...)` called eagerly",
    FLOOR: "C loop of `TVMFFIFunctionCall` (floor)",
}

GPU_README_ROWS = {  # the README's GPU table: the forum thread's GEMV, these paths
    KERNEL: "kernel GPU time",
    RT_MOD_TORCH: "`rt_mod(x, w, scale, zeros, out)` on torch tensors",
    "rt_mod(*tvm tensors)": "`rt_mod(*tvm_tensors)`, tensors converted once",
    PRECONVERTED: "`rt_mod[\"main\"](*tvm_tensors)`, function and tensors converted once",
    "from_dlpack(to_dlpack(t)) per call": "`rt_mod` with `from_dlpack(to_dlpack(t))` per call",
    NVCC: "the thread's nvcc library via ctypes",
    REF: "tvm_ffi `f(*torch_tensors)`",
    DYNAMIC: "**tvmfast** `f(x, w, scale, zeros, out)`",
    "tvmfast prepared": "**tvmfast** prepared `p()`",
    "tvmfast prepared, release_gil=False": "**tvmfast** prepared `p()`, `release_gil=False`",
    FLOOR: "C loop of `TVMFFIFunctionCall` (floor)",
    GRAPH: "CUDA graph replay, per kernel",
}


def table_block(header, rows: dict, labels: dict, cells) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + [f"| {label} | " + " | ".join(cells(rows[k])) + " |" for k, label in labels.items() if k in rows]


def blocks(results: dict) -> dict:
    """name -> the Markdown between that block's markers (README.md, docs/*.md)."""
    figs, out = figures(results), {}
    cpu, gpu = results.get("cpu"), results.get("gpu")
    if cpu is not None:
        add = _table(cpu, "add, 3 tensors of 128 ")
        legacy = " Measured before the GIL was released by default: the `release_gil=False` rows held it." \
            if cpu.get("legacy_gil") else ""
        out["speed-table"] = "\n".join(table_block(
            ("path (add of 3 x 128 float32)", "us/call", "vs tvm_ffi"), add, README_ROWS,
            lambda r: (f"{r['median']:.3f}", f"{r['vs_ref']:.2f}")) + ["", fill(
                "Medians of {{cpu_rounds}} interleaved rounds of {{cpu_number}} calls per path; {{cpu_machine}}, "
                "Python {{cpu_python}}, torch {{cpu_torch}}, {{cpu_date}}. Above the floor, tvmfast's "
                "call adds {{cpu_dynamic_over_us}} us where tvm_ffi's adds {{cpu_ref_over_us}} us; each further "
                "tensor argument costs ~{{cpu_ns_per_tensor}} ns (tvm_ffi ~{{cpu_ref_ns_per_tensor}} ns).", figs,
                "speed-table") + legacy])
        out["torch-op-cost"] = fill(
            "An eager call of the op costs {{cpu_op_us}} us where `f(...)` costs {{cpu_dynamic_us}} us (the add of "
            "3 x 128 float32 on the CPU, bench/RESULTS.md)"
            + ("; on the GPU benchmark's host, {{gpu_op_us}} us against {{gpu_dynamic_us}} us"
               if "gpu_op_us" in figs else ""), figs, "torch-op-cost")
        if "cpu_reexport_ratio" in figs:
            out["reexport-cost"] = fill(
                "in the table above, tvmfast's `f(a, b, out)`, which exports its three tensors at every call, takes "
                "{{cpu_reexport_ratio}}x the time of `rt_mod[\"main\"](*tvm_tensors)`, whose function and tensors "
                "were converted once before the loop"
                + ("; on the {{gpu_name}} below, with the GEMV's five CUDA tensors and torch's current stream asked "
                   "for at every call, {{gpu_reexport_ratio}}x" if "gpu_reexport_ratio" in figs else ""),
                figs, "reexport-cost")
        if "cpu_gil_ns" in figs:
            out["gil-cost"] = fill("{{cpu_gil_ns}} ns a call on an x86 CPU (bench/RESULTS.md)", figs, "gil-cost")
    if gpu is not None:
        seed = _table(gpu, GPU_SEED)
        i = gpu["info"]
        legacy = " tvmfast's `release_gil=False` row: measured when holding the GIL was the default." \
            if gpu.get("legacy_gil") else ""
        out["gpu-table"] = "\n".join(table_block(
            ("path (int4 GEMV 1x1024 x 1024x1024)", "us/call", "vs C floor", "thread's A100"), seed, GPU_README_ROWS,
            lambda r: (f"{r['median']:.2f}", fmt(r.get("vs_floor"), 2), fmt(r.get("seed_a100"), 2))) + [
            "", f"{i['gpu']}, CUDA {i['cuda']}, Python {i['python']}, torch {i['torch']}, {i['date']}: host time "
            "per call (the kernel row: GPU time; "
            "graph replay: per kernel of a replayed graph)." + legacy])
        out["headline"] = fill(
            "On an {{gpu_name}}, calling the int4 GEMV kernel of the TVM forum thread quoted below (5 tensors, "
            "{{gpu_kernel_us}} us of GPU "
            "time) from PyTorch costs {{gpu_dynamic_us}} us of host time through tvmfast, {{gpu_ref_us}} us through "
            "tvm_ffi, and {{gpu_floor_us}} us from a C loop calling TVM directly", figs, "headline")
        if "chain_compiled_us" in figs:
            out["compile-gap"] = fill(
                "Under `torch.compile(mode=\"reduce-overhead\")` the op runs inside the captured graph, but a call "
                "of the compiled module (a step of {{chain_gemvs}} GEMVs, {{chain_kernels_step_us}} us of GPU work) "
                "takes {{chain_compiled_step_us}} us, mostly torch's own per-call runtime: "
                "{{chain_compiled_vs_graph}}x the time of the same calls captured with `torch.cuda.graph` "
                "({{chain_compiled_us}} against {{chain_graph_us}} us per GEMV). Compiling without CUDA graphs and "
                "capturing the compiled step "
                "once with `torch.cuda.graph` runs at the graph's speed ({{chain_captured_vs_graph}}x)", figs,
                "compile-gap")
    top = [fill(text, figs, "torch-op-measured") for key, text in (
        ("topcpu_vs_alias", "on {{topcpu_host}} ({{topcpu_date}}) an eager call of the op ({{topcpu_cpu_what}}) "
                            "costs {{topcpu_vs_alias}}x `torch.ops.aten.alias`, a C++ op that does nothing (torch's "
                            "dispatcher alone)"),
        ("topgpu_vs_alias", "on the GPU benchmark's host CPU ({{topgpu_cpu_what}}) {{topgpu_vs_alias}}x"),
        ("topgpu_vs_cpp", "on an {{topgpu_gpu}} with the forum thread's int4 GEMV, an eager call costs "
                          "{{topgpu_vs_cpp}}x the host time of a `TORCH_LIBRARY` C++ op launching the same kernel "
                          "on torch's current stream"),
        ("topgpu_compiled_vs_cpp", "a 16-GEMV module compiled with `torch.compile` (default mode, no CUDA graphs) "
                                   "{{topgpu_compiled_vs_cpp}}x the same module of C++ ops ({{topgpu_compiled_us}} "
                                   "against {{topgpu_compiled_cpp_us}} us per GEMV)")) if key in figs]
    if top:
        out["torch-op-measured"] = ("Against torch's own ops (`python -m bench.torch_op`, bench/RESULTS.md): "
                                    + "; ".join(top))
    functional = functional_op_sentence(results.get("torch_op_cpu"))
    if functional:
        out["functional-op"] = functional
    matrix = matrix_sentence(results.get("matrix"))
    if matrix:
        out["matrix-summary"] = matrix
    return out


MATRIX_GROUPS = {  # the matrix's table title (after "Argument kinds: ") -> what the sentence calls it
    "tensors": "tensors (torch, numpy, tvm_ffi, other DLPack producers)",
    "scalars, strings and bytes": "scalars, strings and bytes",
    "Python containers": "tuples, lists and dicts",
    "tvm_ffi objects and other handles": "tvm_ffi objects, dtypes, devices and pointers",
    "errors": "errors",
}


def matrix_sentence(result: dict | None) -> str | None:
    """What the argument-kind matrix found, in one sentence: the range of tvmfast's time against
    tvm_ffi's per group of kinds (dynamic and prepared calls), and the slowest cell."""
    if result is None:
        return None
    parts, worst, cells = [], None, 0
    for title, rows in result["tables"].items():
        group = title.split(": ", 1)[1].rsplit(" (", 1)[0]
        ratios = [r[k] for r in rows.values() for k in ("dynamic_vs_ref", "prepared_vs_ref")]
        cells += len(rows)
        parts.append(f"{MATRIX_GROUPS.get(group, group)} {min(ratios):.2f}-{max(ratios):.2f}x")
        for name, r in rows.items():
            for k in ("dynamic_vs_ref", "prepared_vs_ref"):
                if worst is None or r[k] > worst[0]:
                    worst = (r[k], name, k.split("_")[0])
    i = result["info"]
    same = all(r["same"] for rows in result["tables"].values() for r in rows.values())
    outcome = "the same result or error as tvm_ffi" if same else "SOME OTHER OUTCOME"
    return (f"across the {cells} argument kinds of `python -m bench.matrix` (each as an argument of `testing.echo`, "
            f"`testing.nop` or a TVM kernel, and as the result where echo returns it), a tvmfast call takes, of "
            f"tvm_ffi's time: " + "; ".join(parts) + f". The slowest cell is {worst[1]} ({worst[2]} call, "
            f"{worst[0]:.2f}x); every cell gave {outcome}"
            f" ({i.get('machine', 'the CPU').split(', Linux')[0]}, {i['date']}, bench/RESULTS.md)")


def functional_op_sentence(result: dict | None) -> str | None:
    """The functional op's eager cost against torch.add and torch.library.custom_op (bench.torch_op)."""
    if result is None:
        return None
    table = next((rows for title, rows in result["tables"].items() if title.startswith("CPU: functional ops")), None)
    if table is None:
        return None
    op = next(row for name, row in table.items() if name.startswith("tvmfast functional op"))
    add = next(row for name, row in table.items() if name.startswith("torch.add"))
    alias = next(row for name, row in table.items() if name.startswith("torch.ops.aten.alias"))
    aten_add = next((row for name, row in table.items() if name.startswith("torch.ops.aten.add")), None)
    custom = next(row for name, row in table.items() if name.startswith("torch.library.custom_op, functional"))
    cpp_alloc = next((row for name, row in table.items() if name.startswith("TORCH_LIBRARY C++ op that only")), None)
    i = result["info"]
    machine = i.get("machine", "the CPU").split(", Linux")[0]
    return (f"on {machine} ({i['date']}), an eager call of a functional op allocating its "
            f"output (an add of two 4x256 float32 tensors) takes {op['median']:.2f} us: "
            f"{op['median'] / add['median']:.2f}x `torch.add(a, b)` ({add['median']:.2f} us), "
            f"{custom['median'] / op['median']:.1f}x less than `torch.library.custom_op` doing the same allocation "
            f"and call ({custom['median']:.2f} us). Through the same Python-to-dispatcher path, which every op "
            f"called from Python takes, `torch.ops.aten.alias`, which does nothing, takes "
            f"{alias['median'] / add['median']:.2f}x `torch.add`"
            + (f", a C++ op (`TORCH_LIBRARY`) that only allocates its result "
               f"{cpp_alloc['median'] / add['median']:.2f}x" if cpp_alloc else "")
            + (f", and torch's own add, `torch.ops.aten.add.Tensor(a, b)`, "
               f"{aten_add['median'] / add['median']:.2f}x" if aten_add else "")
            + " (`python -m bench.torch_op`, bench/RESULTS.md).")


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with its ``<!-- name ... -->`` ... ``<!-- /name -->`` block replaced (if it has one)."""
    start, end = f"<!-- {name}", f"<!-- /{name} -->"
    if start not in text:
        return text
    a, b = text.index(start), text.index(end) + len(end)
    marker = f"<!-- {name}: written by `python -m bench.report` -->"
    sep = "\n" if text[a:b].startswith(marker + "\n") else ""  # a block of lines, or inline in a paragraph
    return text[:a] + f"{marker}{sep}{block}{sep}<!-- /{name} -->" + text[b:]


def documents() -> list[str]:
    """The files whose blocks are generated: README.md and docs/*.md."""
    return [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def assemble(results_dir: str = RESULTS, results_md: str = os.path.join(HERE, "RESULTS.md"),
             docs: list[str] | None = None, notes: str = os.path.join(HERE, "RESULTS_NOTES.md")) -> None:
    """bench/RESULTS.md from every saved result and the prose; the blocks of README.md and docs/*.md."""
    results = saved_results(results_dir)
    with open(results_md, "w") as fh:
        fh.write(results_markdown(results, notes, results_dir))
    generated = blocks(results)
    for path in documents() if docs is None else docs:
        with open(path) as fh:
            text = fh.read()
        new = text
        for name, block in generated.items():
            new = replace_block(new, name, block)
        unknown = set(re.findall(r"<!-- ([\w-]+): written by", new)) - set(generated)
        if unknown:
            raise KeyError(f"{path}: no figures for the block(s) {sorted(unknown)}")
        if new != text:
            with open(path, "w") as fh:
                fh.write(new)


if __name__ == "__main__":
    assemble()
