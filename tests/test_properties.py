"""Property tests (hypothesis): any length, any view offset, the same answer as torch."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tvmfast
from support import tvm_kernels as kernels

torch = pytest.importorskip("torch")
pytest.importorskip("tvm", reason="apache-tvm builds the test kernels")

ADD_DYN = tvmfast.bind(kernels.build_add_dynamic("float32"))
ADD_ANY_OFFSET = tvmfast.bind(kernels.build_add(128, offset_factor=1), alignment=1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 5000), seed=st.integers(0, 2**31 - 1))
def test_symbolic_length(n, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, generator=g), torch.randn(n, generator=g)
    out = torch.full((n,), float("nan"))
    ADD_DYN(a, b, out)
    assert torch.equal(out, a + b)


@settings(max_examples=60, deadline=None)
@given(offsets=st.tuples(*[st.integers(0, 72)] * 3), seed=st.integers(0, 2**31 - 1))
def test_views_at_any_offset(offsets, seed):
    g = torch.Generator().manual_seed(seed)
    bigs = [torch.randn(200, generator=g) for _ in range(3)]
    before = bigs[2].clone()
    a, b, out = (big[o:o + 128] for big, o in zip(bigs, offsets))
    ADD_ANY_OFFSET(a, b, out)
    o = offsets[2]
    assert torch.equal(bigs[2][o:o + 128], a + b)
    assert torch.equal(bigs[2][:o], before[:o]) and torch.equal(bigs[2][o + 128:], before[o + 128:])
