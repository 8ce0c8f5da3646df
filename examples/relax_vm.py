"""A Relax model compiled by TVM, called through tvmfast; tensors come back as torch.

    python examples/relax_vm.py
"""
import torch
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import tvmfast


@I.ir_module
class Model:
    @R.function
    def main(x: R.Tensor((4, 8), "float32"), w: R.Tensor((8, 3), "float32")):
        with R.dataflow():
            y = R.nn.relu(R.matmul(x, w))
            R.output(y)
        return y


vm = relax.VirtualMachine(tvm.compile(Model, target="llvm"), tvm.cpu())
f = tvmfast.bind(vm, "main")
x, w = torch.randn(4, 8), torch.randn(8, 3)
y = f(x, w)
assert isinstance(y, torch.Tensor)
torch.testing.assert_close(y, torch.relu(x @ w))
print("Relax VM through tvmfast returned a torch.Tensor:", tuple(y.shape))
