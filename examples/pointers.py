"""Raw-pointer calls: prepare once with example tensors, then pass only data addresses.

    python examples/pointers.py
"""
import torch
from add_kernel import build_add  # beside this file: C = A + B in TVMScript

import tvmfast

f = tvmfast.bind(build_add(128))
a, b, out = torch.randn(128), torch.randn(128), torch.empty(128)
p = f.prepare(a, b, out)               # fixes dtype, shape and device of each argument

rows_a, rows_b = torch.randn(4, 128), torch.randn(4, 128)
rows_out = torch.empty(4, 128)
for r in range(4):                     # same shapes, other memory: only the addresses change
    p.call_ptrs(rows_a[r].data_ptr(), rows_b[r].data_ptr(), rows_out[r].data_ptr())
torch.testing.assert_close(rows_out, rows_a + rows_b)
print("call_ptrs: 4 rows added through one prepared call")
