"""TVM functions inside torch.compile'd models, as torch.library custom ops.

    python examples/torch_compile_op.py

1. A TVM kernel that writes its output (C = A + B) as an out-variant op.
2. A Relax VM function that allocates its result as a functional op (returns=), with a backward
   registered through torch.library.register_autograd, trained under torch.compile.
"""
import torch
import tvm
from add_kernel import build_add  # beside this file: C = A + B in TVMScript
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

import tvmfast

# 1. Out-variant: argument 2 is written by the kernel; the op returns nothing.
add = tvmfast.bind(build_add(128), num_args=3).as_torch_op("tvmfast_example::add", mutates_args=(2,))


def model(x, y):
    out = torch.empty_like(x)
    add(x * 2, y, out)
    return torch.relu(out)


compiled = torch.compile(model, backend="inductor", fullgraph=True)  # no graph break
x, y = torch.randn(128), torch.randn(128)
torch.testing.assert_close(compiled(x, y), model(x, y))


# 2. Returning op: a Relax VM function relu(x @ w) with a symbolic row count.
@I.ir_module
class Linear:
    @R.function
    def main(x: R.Tensor(("n", 8), "float32"), w: R.Tensor((8, 3), "float32")):
        with R.dataflow():
            y = R.nn.relu(R.matmul(x, w))
            R.output(y)
        return y


vm = relax.VirtualMachine(tvm.compile(Linear, target="llvm"), tvm.cpu())
linear_relu = tvmfast.bind(vm, "main").as_torch_op(
    "tvmfast_example::linear_relu",
    returns=lambda x, w: x.new_empty(x.shape[0], w.shape[1]),  # output spec = fake implementation
)


def setup_context(ctx, inputs, output):
    x, w = inputs
    ctx.save_for_backward(x, w, output)


def backward(ctx, grad):
    x, w, y = ctx.saved_tensors
    grad_y = grad * (y > 0)
    return grad_y @ w.T, x.T @ grad_y


# Without this, calling the op on tensors that require grad raises (no silently wrong gradient).
torch.library.register_autograd("tvmfast_example::linear_relu", backward, setup_context=setup_context)

w = torch.randn(8, 3, requires_grad=True)
step = torch.compile(lambda x: linear_relu(x, w).square().mean(), backend="aot_eager", fullgraph=True)
for n in (4, 16):
    x = torch.randn(n, 8)
    w.grad = None
    step(x).backward()
    w_ref = w.detach().clone().requires_grad_()
    torch.relu(x @ w_ref).square().mean().backward()
    torch.testing.assert_close(w.grad, w_ref.grad)
print("torch.compile(fullgraph=True) with the TVM ops: same result as eager, gradients as torch's")
