"""The README's examples run (so they cannot rot); examples/c_api is run by
test_integrations.py::test_c_level_api_from_another_cython_module."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("script", ["pointers.py", "relax_vm.py", "torch_compile_op.py"])
def test_example_runs(script):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
