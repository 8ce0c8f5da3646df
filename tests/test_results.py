"""What a call returns: ints, floats, bools, None and strings of the types tvm_ffi returns; a tensor
result as a torch tensor on the same memory, never a copy (a function returning its ffi::Tensor
argument, an identity function, a Relax VM function allocating its result); and a result converted
from the result alone, never by exporting an argument again after a callback changed it."""
import pytest
import tvm_ffi

import tvmfast

torch = pytest.importorskip("torch")


def test_scalars_and_return_values():
    echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
    ref = tvm_ffi.get_global_func("testing.echo")
    for v in [3, -2**62, 2.5, True, False, None, "héllo"]:
        got = echo(v)
        assert got == ref(v) and type(got) is type(ref(v))


def test_tensor_returning_function_gives_torch_without_copy(gen):
    """A C++ function taking/returning ffi::Tensor gets a real ffi::Tensor, first call included."""
    g = tvm_ffi.get_global_func("testing.schema_id_tensor")
    f = tvmfast.bind(g)
    a = torch.randn(4, 3, generator=gen)
    for _ in range(2):
        r = f(a)
        assert isinstance(r, torch.Tensor) and r.data_ptr() == a.data_ptr()
        assert torch.equal(r, a)


def test_identity_function_returns_what_tvm_ffi_returns(gen):
    """An echo gives a new torch tensor on the same memory, as through tvm_ffi."""
    raw = tvm_ffi.get_global_func("testing.echo")
    echo = tvmfast.bind(raw)
    a = torch.randn(5, generator=gen)
    ours, theirs = echo(a), raw(a)
    assert type(ours) is type(theirs) is torch.Tensor
    assert ours is not a and theirs is not a
    assert ours.data_ptr() == theirs.data_ptr() == a.data_ptr()
    assert ours.shape == a.shape and ours.stride() == a.stride() and torch.equal(ours, a)
    del a
    assert torch.equal(ours, theirs)  # the result keeps the memory alive


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


@pytest.mark.parametrize("returns", ["str", "array", "tensor", "int"])
def test_result_conversion_after_callback_changed_an_argument(returns):
    def make(x):
        def callback(t):
            x.data = torch.zeros(3, dtype=torch.bits8)  # a dtype DLPack lacks: x no longer exports
            kept = torch.arange(4.0)
            return {"str": "done", "array": [kept, 2], "tensor": kept, "int": 7}[returns]
        return tvm_ffi.convert(callback)

    x1, x2 = torch.randn(4), torch.randn(4)
    ours = tvmfast.bind(make(x1))(x1)
    theirs = make(x2)(x2)
    assert type(ours) is type(theirs)
    if returns == "array":
        assert type(ours[0]) is type(theirs[0]) and torch.equal(ours[0], theirs[0]) and ours[1] == theirs[1]
    elif returns == "tensor":
        assert torch.equal(ours, theirs)
    else:
        assert ours == theirs
