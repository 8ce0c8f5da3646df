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
    ("quickstart.py", ["--rounds", "2", "--number", "200"], "tvmfast prepared"),
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
