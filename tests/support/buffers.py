"""Arrays and views whose data starts at a chosen alignment (torch's CPU buffers are 64-byte aligned,
numpy's only 16-byte at best), and a bit-for-bit comparison.  Importing this module does not import
torch: ``aligned`` serves the tests that run without it."""
import numpy as np


def aligned(values, alignment=64):
    """A copy of ``values`` whose data starts on an ``alignment``-byte boundary."""
    raw = np.empty(values.nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    out = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


def torch_at(g, n: int, offset_elems: int, dtype=None):
    """A 1-D torch view of ``n`` elements (float32 unless ``dtype`` says) starting ``offset_elems``
    into a fresh buffer (torch buffers are 64-byte aligned: the view's data is
    ``offset_elems * itemsize`` bytes past it)."""
    import torch  # noqa: PLC0415

    dtype = torch.float32 if dtype is None else dtype
    return torch.randn(n + offset_elems + 16, generator=g).to(dtype)[offset_elems:offset_elems + n]


def same_bits(va, vb) -> bool:
    """Equal values, bit for bit (NaN equal to NaN). Checked first because it is cheap: the first
    torch.testing.assert_close in a process takes seconds, and each row runs in a fresh child."""
    import torch  # noqa: PLC0415

    if va.dtype != vb.dtype or va.shape != vb.shape:
        return False
    a, b = va.contiguous().reshape(-1), vb.contiguous().reshape(-1)
    if a.dtype == torch.bool:
        return torch.equal(a, b)
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))
