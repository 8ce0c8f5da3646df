"""The examples the docs point to run as a user runs them, ``python examples/<x>.py``, from another folder
(so they cannot rot, and need nothing but the installed packages and the files beside them).
examples/c_api is run by test_c_api.py::test_c_level_api_from_another_cython_module."""
import os
import subprocess
import sys

import pytest

# Every example builds a TVM kernel and calls it on torch tensors.
pytest.importorskip("torch")
pytest.importorskip("tvm", reason="the examples build their kernels with apache-tvm")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize("script, args, expected", [
    ("quickstart.py", ["--rounds", "3", "--number", "200"], "tvmfast prepared"),
    ("pointers.py", [], "4 rows added"),
    ("relax_vm.py", [], "returned a torch.Tensor"),
    ("torch_compile_op.py", [], "same result as eager"),
])
def test_example_runs(script, args, expected, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but what a user has
    res = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert expected in res.stdout


def test_quickstart_prints_each_path_with_its_ratio_to_tvm_ffi(tmp_path):
    """The README's first command: one line per path (what it is, us per call, its ratio to tvm_ffi's
    call, the reference at 1.00), and the note that ratios, not absolute times, are what to compare."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, os.path.join(EXAMPLES, "quickstart.py"), "--rounds", "3", "--number", "200"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {}
    for line in res.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and all(p.replace(".", "", 1).isdigit() for p in parts[:2]):
            rows[parts[2]] = (float(parts[0]), parts[1])
    paths = {"rt_mod(a, b, out)": 'finds "main"', "tvm_ffi fn(a, b, out)": 'rt_mod["main"] found once',
             "fn(*tvm_tensors)": "converted once",
             "tvmfast dynamic": "f(a, b, out)", "tvmfast frozen": "f.freeze(", "tvmfast prepared": "f.prepare("}
    for path, what in paths.items():
        line = next((rest for rest in rows if rest.startswith(path)), None)
        assert line is not None, f"no line for {path!r} in:\n{res.stdout}"
        us, ratio = rows[line]
        assert us > 0 and what in line[len(path):], line
    ref = next(rest for rest in rows if rest.startswith("tvm_ffi fn(a, b, out)"))
    assert rows[ref][1] == "1.00"
    assert "median us per call" in res.stdout and "ratios to\ntvm_ffi" in res.stdout
