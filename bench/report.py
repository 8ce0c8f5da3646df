"""Reporting for the CPU and GPU benchmarks: the environment, Markdown tables, JSON, the PNG
chart, and bench/RESULTS.md with the README's speed tables assembled from the saved results.

    python -m bench.report        # rewrite bench/RESULTS.md and the README tables from bench/results/

A result is a dict: ``info`` (:func:`environment`), ``command``, ``method`` (how it was
timed), ``tables`` (title -> rows, a row being name -> {"median", "p25", "p75", ...}) and
``notes`` (Markdown paragraphs), plus whatever a benchmark adds.
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
README = os.path.join(HERE, "..", "README.md")


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
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        python=platform.python_version(), torch=torch.__version__, tvm=tvm_version,
        tvm_ffi=tvm_ffi.__version__, tvmfast=tvmfast.__version__,
        torch_direct_export=_core._torch_direct_export_state())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def command_line(module: str, argv) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python -m", module, *args])


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
    """results_<tag>.json, results_<tag>.md and chart_<tag>.png in ``out_dir``; returns the Markdown."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"results_{tag}.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    text = markdown(result, tag, columns)
    with open(os.path.join(out_dir, f"results_{tag}.md"), "w") as fh:
        fh.write(text)
    chart(os.path.join(out_dir, f"chart_{tag}.png"), panels,
          title=f"tvmfast {tag.upper()} benchmark, {result['info'].get('gpu') or result['info']['machine']}")
    return text


def markdown(result: dict, tag: str, columns) -> str:
    lines = [f"## {tag.upper()}", "", describe(result), ""]
    for title, rows in result["tables"].items():
        lines += [f"### {title}", "", markdown_table(rows, columns.get(title, columns["default"])), ""]
    for note in result.get("notes", []):
        lines += [note, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# bench/RESULTS.md and the README's speed table, from the saved results.
# ---------------------------------------------------------------------------------------------
README_ROWS = {  # the README's speed table: CPU add of 128, these paths
    "rt_mod(*tvm tensors)": "`rt_mod(*tvm_tensors)`",
    "tvm_ffi f(*torch)": "tvm_ffi `f(*torch_tensors)`",
    "ctypes TVMFFIFunctionCall": "ctypes `TVMFFIFunctionCall`, DLTensors filled per call",
    "tvmfast dynamic": "**tvmfast** `f(a, b, out)`",
    "tvmfast frozen": "**tvmfast** frozen `g(out)`",
    "tvmfast prepared": "**tvmfast** prepared `p()`",
    "torch custom op (as_torch_op)": "`f.as_torch_op(...)` called eagerly",
    "C loop floor": "C loop of `TVMFFIFunctionCall` (floor)",
}


def readme_block(name: str, header, rows: dict, labels: dict, cells, footer: str) -> str:
    """A README table between ``<!-- name -->`` markers: one line per row of ``labels`` measured."""
    lines = [f"<!-- {name}: written by `python -m bench.report` -->", "| " + " | ".join(header) + " |",
             "|---|" + "---:|" * (len(header) - 1)]
    lines += [f"| {label} | " + " | ".join(cells(rows[k])) + " |" for k, label in labels.items() if k in rows]
    return "\n".join(lines + ["", footer, f"<!-- /{name} -->"])


def readme_table(cpu: dict) -> str:
    add = next(iter(cpu["tables"].values()))
    t = cpu["targets"]
    return readme_block(
        "speed-table", ("path", "us/call", "vs tvm_ffi"), add, README_ROWS,
        lambda r: (f"{r['median']:.3f}", f"{r['vs_ref']:.2f}"),
        f"Measured {cpu['info']['date']}, torch {cpu['info']['torch']}. Above the floor, tvmfast's dynamic "
        f"call adds {add['tvmfast dynamic']['over_floor']:.3f} us where tvm_ffi adds "
        f"{add['tvm_ffi f(*torch)']['over_floor']:.3f} us; each further tensor argument costs "
        f"~{t['P3 ns per extra tensor (dynamic - floor slope) <= 30']:.0f} ns "
        f"(tvm_ffi ~{t['P3 same for tvm_ffi']:.0f} ns).")


GPU_README_ROWS = {  # the README's GPU table: the forum thread's GEMV on an H100, these paths
    "kernel GPU time (CUPTI)": "kernel GPU time",
    "rt_mod(*tvm tensors)": "`rt_mod(*tvm_tensors)`",
    "from_dlpack(to_dlpack(t)) per call": "`rt_mod` with `from_dlpack(to_dlpack(t))` per call",
    "ctypes TVMFFIFunctionCall": "ctypes `TVMFFIFunctionCall`, DLTensors filled per call",
    "nvcc library via ctypes, data_ptr() per call": "the thread's nvcc library via ctypes",
    "tvm_ffi f(*torch)": "tvm_ffi `f(*torch_tensors)`",
    "tvmfast dynamic": "**tvmfast** `f(x, w, scale, zeros, out)`",
    "tvmfast frozen": "**tvmfast** frozen `g(x, out)`",
    "tvmfast prepared": "**tvmfast** prepared `p()`",
    "C loop floor": "C loop of `TVMFFIFunctionCall` (floor)",
    "raw cuLaunchKernel C loop": "C loop of raw `cuLaunchKernel`",
    "CUDA graph replay, per kernel": "CUDA graph replay, per kernel",
}


def readme_gpu_table(gpu: dict) -> str:
    i = gpu["info"]
    return readme_block(
        "gpu-table", ("path (int4 GEMV 1x1024 x 1024x1024)", "us/call", "vs C floor", "thread's A100"),
        next(iter(gpu["tables"].values())), GPU_README_ROWS,
        lambda r: (f"{r['median']:.2f}", fmt(r.get("vs_floor"), 2), fmt(r.get("seed_a100"), 2)),
        f"{i['gpu']}, {i['date']}, torch {i['torch']}: host time per call (the kernel row: GPU time; "
        "graph replay: per kernel of a replayed graph).")


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with its ``<!-- name ... -->`` ... ``<!-- /name -->`` block replaced (if it has one)."""
    start, end = f"<!-- {name}", f"<!-- /{name} -->"
    if start not in text:
        return text
    a, b = text.index(start), text.index(end) + len(end)
    return text[:a] + block + text[b:]


def assemble(results_dir: str = RESULTS, results_md: str = os.path.join(HERE, "RESULTS.md"),
             readme: str = README) -> None:
    """bench/RESULTS.md: the head (bench/RESULTS_HEAD.md), then every saved result's Markdown;
    the README's speed table from results_cpu.json, its GPU table from results_gpu.json."""
    parts = [open(os.path.join(HERE, "RESULTS_HEAD.md")).read().rstrip(), ""]
    for md in sorted(glob.glob(os.path.join(results_dir, "results_*.md"))):
        tag = os.path.basename(md)[len("results_"):-len(".md")]
        parts += [open(md).read().rstrip(), "", f"![{tag} chart](results/chart_{tag}.png)", ""]
    with open(results_md, "w") as fh:
        fh.write("\n".join(parts))
    with open(os.path.join(results_dir, "results_cpu.json")) as fh:
        text = replace_block(open(readme).read(), "speed-table", readme_table(json.load(fh)))
    gpu_path = os.path.join(results_dir, "results_gpu.json")
    if os.path.exists(gpu_path):
        with open(gpu_path) as fh:
            text = replace_block(text, "gpu-table", readme_gpu_table(json.load(fh)))
    with open(readme, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    assemble()
