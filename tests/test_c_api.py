"""tvmfast's C-level API from another Cython module (examples/c_api): a module that cimports tvmfast
builds against the installed .pxd files and calls a prepared function from a nogil loop, with TVM's
errors raised as from rt_mod and functions that are not fully prepared refused."""
import os
import subprocess
import sys

import pytest

import tvmfast
from support import tvm_kernels as kernels
from support.helpers import needs_tvm

torch = pytest.importorskip("torch")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_tvm
def test_c_level_api_from_another_cython_module(tmp_path):
    """examples/c_api: a Cython module cimports tvmfast and calls a kernel from a nogil loop."""
    import shutil

    for name in ["rows.pyx", "setup.py", "run.py"]:
        shutil.copy(os.path.join(ROOT, "examples", "c_api", name), tmp_path)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, check=True,
                   capture_output=True)
    res = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and "right" in res.stdout, res.stderr[-3000:]
    sys.path.insert(0, str(tmp_path))
    try:
        import rows
    finally:
        sys.path.remove(str(tmp_path))
    f = tvmfast.bind(kernels.build_add(128))
    a, b = torch.randn(8, 128), torch.randn(8, 128)
    out = torch.full((8, 128), float("nan"))
    rows.add_rows(f.prepare(a[0], b[0], out[0]), a.data_ptr(), b.data_ptr(), out.data_ptr(), 8, 128 * 4)
    assert torch.equal(out, a + b)
    # a TVM error inside the nogil loop comes out as the same Python error as from rt_mod
    p_bad = f.prepare(a[0], b[0], torch.empty(64))
    with pytest.raises(ValueError, match=r"(?s)Invalid C.shape\[0\]"):
        rows.add_rows(p_bad, a.data_ptr(), b.data_ptr(), out.data_ptr(), 1, 128 * 4)
    # a function that is not fully prepared is refused by the C entry point too
    g = tvmfast.bind(kernels.build_add(128), num_args=3).freeze({0: a[0]})
    with pytest.raises(TypeError, match="tvmfast_call_ptrs: not a prepared function"):
        rows.add_rows(g, a.data_ptr(), b.data_ptr(), out.data_ptr(), 1, 128 * 4)
