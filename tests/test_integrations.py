"""Beyond the drop-in: torch custom op under torch.compile, Relax VM functions, the
C-level API from another Cython module."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import tvmfast
from tvmfast import kernels


@pytest.fixture(scope="module")
def add_op():
    f = tvmfast.bind(kernels.build_add(128), num_args=3)
    return f.as_torch_op("tvmfast_test::add128", mutates_args=(2,))


def model(op, x, y):
    out = torch.empty_like(x)
    op(x * 2, y, out)
    return torch.relu(out) + 1


def test_custom_op_eager(add_op):
    x, y = torch.randn(128), torch.randn(128)
    out = torch.full((128,), float("nan"))
    add_op(x, y, out)
    assert torch.equal(out, x + y)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_custom_op_under_torch_compile_fullgraph(add_op, backend):
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, y: model(add_op, x, y), backend=backend, fullgraph=True)
    for _ in range(3):
        x, y = torch.randn(128), torch.randn(128)
        torch.testing.assert_close(compiled(x, y), model(add_op, x, y), rtol=0, atol=0)
        torch.testing.assert_close(compiled(x, y), torch.relu(2 * x + y) + 1)


def test_custom_op_with_scalars():
    f = tvmfast.bind(kernels.build_scale(64))
    a = torch.randn(64)
    op = f.as_torch_op("tvmfast_test::scale64", mutates_args=(1,), example_args=[a, a, 1.0, 1])
    out = torch.full((64,), float("nan"))
    op(a, out, 0.5, 3)
    torch.testing.assert_close(out, a * 0.5 + 3)
    compiled = torch.compile(lambda x: (op(x, out, 2.0, -1), out * 1)[1], backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(a), a * 2 - 1)


def test_custom_op_argument_errors():
    f = tvmfast.bind(kernels.build_add(128))
    with pytest.raises(ValueError, match="needs bind"):
        f.as_torch_op("tvmfast_test::x")
    f = tvmfast.bind(kernels.build_add(128), num_args=3)
    with pytest.raises(ValueError, match="namespace::name"):
        f.as_torch_op("noname")
    with pytest.raises(ValueError, match="mutates_args position 5"):
        f.as_torch_op("tvmfast_test::y", mutates_args=(5,))
    with pytest.raises(TypeError, match="example argument #1: expected a torch.Tensor"):
        f.as_torch_op("tvmfast_test::z", example_args=[torch.randn(2), "s", torch.randn(2)])


def test_relax_vm_returns_torch_tensors():
    import tvm
    from tvm import relax
    from tvm.script import ir as I
    from tvm.script import relax as R

    @I.ir_module
    class Model:
        @R.function
        def main(x: R.Tensor((4, 8), "float32"), w: R.Tensor((8, 3), "float32")):
            with R.dataflow():
                y = R.matmul(x, w)
                z = R.nn.relu(y)
                R.output(z)
            return z

    vm = relax.VirtualMachine(tvm.compile(Model, target="llvm"), tvm.cpu())
    f = tvmfast.bind(vm, "main")
    for _ in range(3):
        x, w = torch.randn(4, 8), torch.randn(8, 3)
        r = f(x, w)
        assert isinstance(r, torch.Tensor)
        torch.testing.assert_close(r, torch.relu(x @ w))
        torch.testing.assert_close(r, vm["main"](x, w))


C_CLIENT = textwrap.dedent('''
    # cython: language_level=3
    from tvmfast._core cimport FrozenFunction, tvmfast_call_ptrs
    from libc.stdint cimport uintptr_t

    def add_rows(FrozenFunction prepared, uintptr_t a, uintptr_t b, uintptr_t out, int rows, int row_bytes):
        """Call the prepared kernel once per row, from a nogil loop, by data pointers."""
        cdef void* ptrs[3]
        cdef int r, ret = 0
        with nogil:
            for r in range(rows):
                ptrs[0] = <void*>(a + r * row_bytes)
                ptrs[1] = <void*>(b + r * row_bytes)
                ptrs[2] = <void*>(out + r * row_bytes)
                ret = tvmfast_call_ptrs(prepared, ptrs, 3)
                if ret != 0:
                    break
        if ret != 0:
            prepared.raise_last_error()
''')


def test_c_level_api_from_another_cython_module(tmp_path):
    """A Cython module cimports tvmfast and calls a kernel from a nogil loop."""
    import tvm_ffi.libinfo

    (tmp_path / "client.pyx").write_text(C_CLIENT)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(tvmfast.__file__)))
    setup = textwrap.dedent(f'''
        from setuptools import setup, Extension
        from Cython.Build import cythonize
        import os, tvm_ffi.libinfo as li
        inc = list(li.include_paths()) + [os.path.join(os.path.dirname(li.__file__), "3rdparty", "dlpack", "include")]
        setup(ext_modules=cythonize([Extension("client", ["client.pyx"], include_dirs=inc, language="c++")],
                                    include_path=[{pkg_root!r}]))
    ''')
    (tmp_path / "setup.py").write_text(setup)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, check=True,
                   capture_output=True)
    sys.path.insert(0, str(tmp_path))
    try:
        import client
    finally:
        sys.path.remove(str(tmp_path))
    f = tvmfast.bind(kernels.build_add(128))
    a, b = torch.randn(8, 128), torch.randn(8, 128)
    out = torch.full((8, 128), float("nan"))
    p = f.prepare(a[0], b[0], out[0])
    client.add_rows(p, a.data_ptr(), b.data_ptr(), out.data_ptr(), 8, 128 * 4)
    assert torch.equal(out, a + b)
    # a TVM error inside the nogil loop comes out as the same Python error
    p_bad = tvmfast.bind(kernels.build_add(128)).prepare(a[0], b[0], torch.empty(64))
    with pytest.raises(ValueError, match=r"(?s)Invalid C.shape\[0\]"):
        client.add_rows(p_bad, a.data_ptr(), b.data_ptr(), out.data_ptr(), 1, 128 * 4)
