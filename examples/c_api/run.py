"""python run.py (after python setup.py build_ext --inplace): a nogil Cython loop calls a TVM kernel."""
import torch
import tvm
from rows import add_rows
from tvm import te

import tvmfast

A, B = te.placeholder((128,), name="A"), te.placeholder((128,), name="B")
C = te.compute((128,), lambda i: A[i] + B[i], name="C")
f = tvmfast.bind(tvm.build(te.create_prim_func([A, B, C]), target="llvm"))  # C = A + B
a, b, out = torch.randn(8, 128), torch.randn(8, 128), torch.empty(8, 128)
p = f.prepare(a[0], b[0], out[0])
add_rows(p, a.data_ptr(), b.data_ptr(), out.data_ptr(), 8, 128 * 4)
torch.testing.assert_close(out, a + b)
print("8 kernel calls from a nogil Cython loop: right")
