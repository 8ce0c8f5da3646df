"""The 128-element add kernel (``support.isolation.kernel("add")``: C = A + B) in the cases that
change, free or mistype its arguments: fresh random inputs, poisoned outputs, the call checked
against torch's ``a + b``, and a sentinel over freed memory.  Used in child processes and
in-process; for the torch test modules only (imports torch)."""
from __future__ import annotations

import torch

import tvmfast
from support.isolation import N, kernel, outcome


def nan_tensor(n: int = N) -> torch.Tensor:
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    return torch.full((n,), float("nan"))


def rand(n: int = N) -> torch.Tensor:
    return torch.randn(n)


def assert_add_works(f) -> None:
    """f (the 128-element add) gives torch's result on fresh random inputs."""
    a, b, out = rand(), rand(), nan_tensor()
    assert f(a, b, out) is None
    assert torch.equal(out, a + b), "the function no longer computes a + b"


class Junk:
    """Allocations of the sizes just freed, filled with a sentinel: memory that a stale
    pointer would now hit.  ``intact()`` tells whether anything wrote into them."""

    def __init__(self, sizes=(N,), count: int = 64):
        self.tensors = [torch.full((n,), 7.0) for n in sizes for _ in range(count)]

    def intact(self) -> bool:
        return all(bool((t == 7.0).all()) for t in self.tensors)


def valid_add_args(a, b, out) -> bool:
    """Would f(a, b, out) be a valid call of the 128-element add kernel now?"""
    for t in (a, b, out):
        if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32 and tuple(t.shape) == (N,)
                and t.is_contiguous() and t.data_ptr() % 64 == 0
                and t.untyped_storage().nbytes() >= 4 * (t.storage_offset() + N)):
            return False
    return True


def check_add_call_now(call, a, b, out, junk: Junk | None = None, must_succeed: bool = False) -> str:
    """call() should behave like f(a, b, out) with the objects as they are now: the sum in
    out's current storage, or (where the arguments are not valid now, or an implementation
    refuses changed storage) an exception.  Never a wrong result, never a write elsewhere."""
    valid = valid_add_args(a, b, out)
    if valid:
        out.fill_(float("nan"))
        expected = a + b
    kind, value = outcome(call)
    if junk is not None:
        assert junk.intact(), "the call wrote into memory that no argument owns now (freed storage reused)"
    if kind == "error":
        assert not (must_succeed and valid), f"valid call raised {type(value).__name__}: {value}"
        return "error"
    assert valid, f"call returned {value!r} for arguments the kernel must refuse"
    assert value is None
    assert torch.equal(out, expected), "wrong result: out (its current storage) != a + b"
    return "ok"


def bind_add(**kw):
    return tvmfast.bind(kernel("add"), **kw)
