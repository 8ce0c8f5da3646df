"""A library that ships tvm_ffi kernels, as its users meet it: quack-kernels' softmax forward, a CuTe DSL
kernel compiled with ``--enable-tvm-ffi`` (an out-variant function ``softmax(x, out)``), bound with
tvmfast and made a functional op whose C kernel allocates ``out``.  Compiling needs no GPU: without CUDA
the op registers and traces (fake tensors, ``torch.export``) and a call raises the kernel's own device
check, as calling the kernel does; with CUDA its outputs equal quack's own ``softmax_fwd`` bit for bit,
eagerly and under ``torch.compile``.  Skipped where quack-kernels does not import (it needs
nvidia-cutlass-dsl and triton)."""
import os

import pytest

torch = pytest.importorskip("torch")
os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")  # compiling without a GPU
quack_softmax = pytest.importorskip("quack.softmax", reason="needs quack-kernels", exc_type=ImportError)
from quack.cute_dsl_utils import torch2cute_dtype_map  # noqa: E402

import tvmfast  # noqa: E402
from tvmfast import alloc  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
N = 4096


@pytest.fixture(scope="module")
def compiled():
    dtype = torch2cute_dtype_map[torch.bfloat16]
    return quack_softmax.Softmax.compile(dtype, dtype, N)  # what quack's own op launches


@pytest.fixture(scope="module")
def softmax(compiled):
    x = torch.randn(32, N, device=DEVICE, dtype=torch.bfloat16)
    return tvmfast.bind(compiled).as_torch_op("tvmfast_test_clients::quack_softmax",
                                              example_args=(x, torch.empty_like(x)), outputs={1: alloc.like(0)})


def test_it_is_a_functional_op_that_traces(softmax):
    schema = softmax._schema
    assert [a.name for a in schema.arguments] == ["a0"] and len(schema.returns) == 1
    assert not any(a.alias_info and a.alias_info.is_write for a in schema.arguments)
    from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: PLC0415

    with FakeTensorMode():
        y = softmax(torch.empty(7, N, device=DEVICE, dtype=torch.bfloat16))
    assert (tuple(y.shape), y.dtype) == ((7, N), torch.bfloat16)

    class Model(torch.nn.Module):
        def forward(self, x):
            return softmax(x * 2).float()

    x = torch.randn(8, N, device=DEVICE, dtype=torch.bfloat16)
    targets = [str(n.target) for n in torch.export.export(Model(), (x,)).graph.nodes if n.op == "call_function"]
    assert any("quack_softmax" in t for t in targets), targets
    assert not any("auto_functionalized" in t for t in targets), targets


@pytest.mark.skipif(CUDA, reason="the CPU's answer")
def test_on_cpu_tensors_the_kernel_raises_its_own_error(compiled, softmax):
    x = torch.randn(4, N, dtype=torch.bfloat16)
    with pytest.raises(Exception) as direct:
        compiled(x, torch.empty_like(x))
    with pytest.raises(Exception) as via_op:
        softmax(x)
    assert type(via_op.value) is type(direct.value)
    assert str(via_op.value) == str(direct.value)
    assert "cuda" in str(direct.value)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_outputs_equal_quacks_own_call(softmax):
    g = torch.Generator(device="cuda").manual_seed(int.from_bytes(os.urandom(4), "little"))
    for rows in (1, 32, 257):
        x = torch.randn(rows, N, device="cuda", dtype=torch.bfloat16, generator=g)
        expected = quack_softmax.softmax_fwd(x)
        torch.testing.assert_close(softmax(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(expected.float(), torch.softmax(x.float(), dim=-1), atol=2e-2, rtol=2e-2)
    model = torch.compile(lambda x: softmax(x).float().sum(-1), fullgraph=True, dynamic=True)
    for rows in (3, 64):
        x = torch.randn(rows, N, device="cuda", dtype=torch.bfloat16, generator=g)
        torch.testing.assert_close(model(x), quack_softmax.softmax_fwd(x).float().sum(-1), rtol=0, atol=0)
