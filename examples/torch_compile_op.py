"""A TVM kernel inside a torch.compile'd model, as a torch.library custom op.

    python examples/torch_compile_op.py
"""
import torch
from add_kernel import build_add  # beside this file: C = A + B in TVMScript

import tvmfast

f = tvmfast.bind(build_add(128), num_args=3)
add = f.as_torch_op("tvmfast_example::add", mutates_args=(2,))  # argument 2 is the output


def model(x, y):
    out = torch.empty_like(x)
    add(x * 2, y, out)
    return torch.relu(out)


compiled = torch.compile(model, backend="inductor", fullgraph=True)  # no graph break
x, y = torch.randn(128), torch.randn(128)
torch.testing.assert_close(compiled(x, y), model(x, y))
print("torch.compile(fullgraph=True) with the TVM op: same result as eager")
