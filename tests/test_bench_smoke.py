"""The benchmarks run end to end (a few iterations; no timing assertions), and their pieces
that need no GPU do what they say."""
import json

import pytest

torch = pytest.importorskip("torch")  # the benchmarks compare against torch throughout
pytest.importorskip("tvm", reason="the benchmarks build their kernels with apache-tvm")

from bench import harness, nvcc_lib, report  # noqa: E402
from support import tvm_kernels as kernels  # noqa: E402


def test_cpu_harness_quick_and_results_assembly(tmp_path, capsys):
    results = harness.main(["--quick", "--out", str(tmp_path)])
    for name in ["results_cpu.json", "results_cpu.md", "chart_cpu.png"]:
        assert (tmp_path / name).stat().st_size > 0
    data = json.loads((tmp_path / "results_cpu.json").read_text())
    add = next(iter(data["tables"].values()))
    expected = {"rt_mod(*tvm tensors)", "tvm_ffi f(*torch)", "ctypes TVMFFIFunctionCall", "tvmfast dynamic",
                "tvmfast frozen", "tvmfast prepared", "torch custom op (as_torch_op)", "C loop floor"}
    assert expected <= set(add)
    assert all(row["median"] > 0 for row in add.values())
    assert set(data["sweep"]) == {"1", "4", "16", "64"}
    assert results["targets"]
    # bench.report: RESULTS.md (tables first, Targets with met/missed) and the README's generated block
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- speed-table: written by `python -m bench.report` -->\nold\n<!-- /speed-table -->\n"
                      "rest <!-- torch-op-cost: written by `python -m bench.report` -->old<!-- /torch-op-cost -->.\n")
    report.assemble(str(tmp_path), str(tmp_path / "RESULTS.md"), [str(readme)])
    text = readme.read_text()
    assert text.startswith("intro\n<!-- speed-table") and text.endswith("<!-- /torch-op-cost -->.\n")
    assert "| **tvmfast** `f(a, b, out)` |" in text and "old" not in text
    op_us = f"{add['torch custom op (as_torch_op)']['median']:.2f} us"
    assert f"An eager call of the op costs {op_us}" in text  # the prose quotes the table's figure
    results_md = (tmp_path / "RESULTS.md").read_text()
    assert results_md.index("| path |") < results_md.index("## What the CPU numbers say")  # tables first
    assert "The GPU" not in results_md  # no GPU result here: its prose is left out
    assert "| target | value | goal | met? |" in results_md
    assert "Wrote results_cpu.json, results_cpu.md and chart_cpu.png to" in capsys.readouterr().out


def test_argument_kind_matrix_quick_and_its_results_section(tmp_path, capsys):
    from bench import matrix
    from support import argument_kinds

    rc = matrix.main(["--quick", "--out", str(tmp_path)])
    for name in ["results_matrix.json", "results_matrix.md", "chart_matrix.png"]:
        assert (tmp_path / name).stat().st_size > 0
    data = json.loads((tmp_path / "results_matrix.json").read_text())
    assert [t.split(": ")[1].split(" (")[0] for t in data["tables"]] == list(argument_kinds.GROUPS)
    rows = {name: row for table in data["tables"].values() for name, row in table.items()}
    assert set(rows) == {cell.name for cell in argument_kinds.cells(torch_cuda=torch.cuda.is_available())}
    assert all(row["tvm_ffi"] > 0 and row["dynamic"] > 0 and row["prepared"] > 0 for row in rows.values())
    assert rc == (0 if all(row["same"] for row in rows.values()) else 1)  # a difference is the exit status
    out = capsys.readouterr().out
    assert "[ 1/" in out and "cp " in out and "results_matrix.json" in out
    # bench.report: the matrix's tables in RESULTS.md, with its columns
    report.assemble(str(tmp_path), str(tmp_path / "RESULTS.md"), [])
    results_md = (tmp_path / "RESULTS.md").read_text()
    assert "### Argument kinds: tensors (us per call)" in results_md
    assert "| argument kind -> function | tvm_ffi gives | tvm_ffi (us) |" in results_md
    assert "| int -> echo | int |" in results_md


def test_targets_are_judged_from_their_names():
    assert report.judge("P2 prepared/floor <= 1.25", 6.4) == ("<= 1.25", "missed")
    assert report.judge("P1 share <= 0.333", 0.30) == ("<= 0.333", "met")
    assert report.judge("speed-up >= 1.2", 1.6) == (">= 1.2", "met")
    assert report.judge("P3 same for tvm_ffi", 99.0) == ("-", "-")


def test_committed_figures_are_generated_from_the_saved_results(tmp_path):
    """bench/RESULTS.md and every generated block in README.md and docs/ are what bench.report makes
    of bench/results/ now: no figure was edited by hand, none is stale."""
    import os
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "bench", "results")):
        pytest.skip("bench/results/ is not here (an installed-package run)")
    docs = [os.path.join(root, "README.md")] + sorted(
        os.path.join(root, "docs", n) for n in os.listdir(os.path.join(root, "docs")) if n.endswith(".md"))
    copies = []
    for path in docs:
        copies.append(tmp_path / os.path.basename(path))
        shutil.copy(path, copies[-1])
    report.assemble(results_md=str(tmp_path / "RESULTS.md"), docs=[str(c) for c in copies])
    with open(os.path.join(root, "bench", "RESULTS.md")) as fh:
        assert fh.read() == (tmp_path / "RESULTS.md").read_text(), "bench/RESULTS.md: run python -m bench.report"
    for path, copy in zip(docs, copies):
        with open(path) as fh:
            assert fh.read() == copy.read_text(), f"{path}: run python -m bench.report"


def test_nvcc_wrapper_passes_arguments_in_the_kernels_order():
    """TVM orders the kernel's parameters its own way (A, B, D, Scale, Zeros); the wrapper takes
    the call order (A, B, Scale, Zeros, D) and must hand each pointer to its parameter."""
    seed = kernels.SEED_GEMV
    src = nvcc_lib.wrapper_source(kernels.cuda_source(seed["name"]), seed["params"], seed["grid"], seed["block"])
    assert "main_kernel<<<dim3(512, 1, 1), dim3(64, 2, 1)>>>((half*)a0, (signed char*)a1, (half*)a4, " \
           "(half*)a2, (half*)a3);" in src
    assert "void* args[] = {&a0, &a1, &a4, &a2, &a3};" in src
    assert "launch(fn, 512, 1, 1, 64, 2, 1, 0, nullptr, args, nullptr)" in src


def test_exported_kernel_folder_is_what_the_gpu_runs_load(tmp_path, monkeypatch):
    """Prebuilt kernels: a folder of <name>.so (+ <name>.cu) found through $TVMFAST_KERNEL_DIR."""
    names = kernels.export_kernels(str(tmp_path), arch="sm_90")
    assert {f"{n}.so" for n in kernels.NAMED_KERNELS} <= set(names)
    assert "seed_gemv_int4.cu" in names
    monkeypatch.setenv(kernels.KERNEL_DIR_ENV, str(tmp_path))
    assert "main_kernel" in kernels.cuda_source(kernels.SEED_GEMV["name"])
    f = kernels.named_kernel("sum5_f32_cpu")  # a CPU kernel loads and runs anywhere
    ts = [torch.randn(16) for _ in range(5)]
    f(*ts)
    torch.testing.assert_close(ts[4], ts[0] + ts[1] + ts[2] + ts[3])
    with pytest.raises(FileNotFoundError, match="python -m bench.kernels"):
        kernels.named_kernel("add_f32_1024", str(tmp_path / "missing"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bench_quick(tmp_path):
    from bench import gpu

    result = gpu.main(["--quick", "--out", str(tmp_path)])
    assert gpu.TABLE_SEED in result["tables"] and gpu.TABLE_CHAIN in result["tables"]
    for name in ["results_gpu.json", "results_gpu.md", "chart_gpu.png"]:
        assert (tmp_path / name).stat().st_size > 0


def test_recorded_commands_name_no_folder_of_the_run():
    assert (report.command_line("bench.gpu", ["--kernel-dir", "/tmp/k", "--out=/root/out", "--rounds", "3"])
            == "python -m bench.gpu --kernel-dir KERNELS --out=DIR --rounds 3")


def test_stage_timing_is_absent_from_a_normal_build(capsys):
    from bench import stages
    from tvmfast import _core

    assert _core._stage_ticks() is None and _core._stage_stamp_ticks() == 0.0
    assert stages.main(["--cpu-only"]) == 2
    assert stages.BUILD in capsys.readouterr().err


def test_stage_timing_build_takes_a_call_apart(tmp_path):
    """A copy of the extension built with -DTVMFAST_TRACE: bench.stages gives every stage of a
    call, and the stages add up to less than the whole call."""
    import os
    import shutil
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "tvmfast", "_core.pyx")):
        pytest.skip("builds a traced copy of tvmfast from its sources: needs a source checkout, not an installed "
                    "tvmfast")
    shutil.copytree(os.path.join(root, "tvmfast"), tmp_path / "tvmfast",
                    ignore=shutil.ignore_patterns("*.so", "*.cpp", "__pycache__"))
    shutil.copy(os.path.join(root, "setup.py"), tmp_path)
    env = dict(os.environ, CPPFLAGS="-DTVMFAST_TRACE")
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    out = subprocess.run([sys.executable, "-c", "import tvmfast, sys; from bench import stages; "
                          "print(tvmfast.__file__); sys.exit(stages.main(sys.argv[1:]))",
                          "--cpu-only", "--rounds", "3", "--out", str(tmp_path / "out")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(tmp_path))  # the traced copy was the one imported
    data = json.loads((tmp_path / "out" / "results_stages_cpu.json").read_text())
    dynamic = data["tables"]["Stages of one call: CPU, add of 3 tensors of 128 float32, dynamic call (us per call)"]
    stamped = [row["median"] for name, row in dynamic.items() if name in stages_names()]
    assert len(stamped) == 9 and all(v > -0.01 for v in stamped)
    assert dynamic["TVMFFIFunctionCall"]["median"] > 0
    assert sum(stamped) < dynamic["whole call (stamps removed)"]["median"]
    echo = next(rows for title, rows in data["tables"].items() if "testing.echo" in title)
    # a tensor result is made in the result stage: it costs more there than a None result
    assert (echo["convert the result"]["median"]
            > dynamic["convert the result"]["median"])


def stages_names():
    from bench import stages

    return stages.STAGES
