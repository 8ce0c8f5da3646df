"""Beyond the drop-in: torch custom op under torch.compile, Relax VM functions, the
C-level API from another Cython module."""
import os
import subprocess
import sys

import pytest

import tvm_kernels as kernels
import tvmfast
from tvmfast_test_utils import needs_tvm

torch = pytest.importorskip("torch")


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


@needs_tvm
def test_bound_functions_pickle_by_rebinding_a_library_path(tmp_path, gen):
    import pickle

    import tvm_ffi

    path = tmp_path / "add.so"
    kernels.build_add(128).export_library(str(path))
    f = tvmfast.bind(str(path), num_args=3, release_gil=True)
    g = pickle.loads(pickle.dumps(f))
    assert (g.num_args, g.release_gil, g.alignment) == (3, True, 64)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = torch.full((128,), float("nan"))
    g(a, b, out)
    assert torch.equal(out, a + b)
    with pytest.raises(TypeError, match=r"tvmfast.BoundFunction: cannot be pickled.*export_library"):
        pickle.dumps(tvmfast.bind(tvm_ffi.get_global_func("testing.echo")))
    with pytest.raises(TypeError, match=r"tvmfast.FrozenFunction: cannot be pickled"):
        pickle.dumps(f.prepare(a, b, out))


def test_arity_is_known_from_a_first_call_or_num_args(add_mod):
    f = tvmfast.bind(add_mod)
    assert f.arity is None
    a = torch.randn(128)
    f(a, a, torch.empty(128))
    assert f.arity == 3
    assert tvmfast.bind(add_mod, num_args=3).arity == 3


def test_bound_function_under_vmap_says_what_to_do(add_mod):
    """A bound function called directly under torch.func gets wrapper tensors without data:
    one clear line pointing to as_torch_op."""
    f = tvmfast.bind(add_mod)
    a, out = torch.randn(3, 128), torch.empty(3, 128)
    with pytest.raises(RuntimeError, match=r"argument #0: .*torch.func \(vmap/grad\) wrapper tensor.*as_torch_op"):
        torch.vmap(lambda x, o: f(x, x, o))(a, out)
