"""Helpers shared by the test modules (a plain module: `conftest` is ambiguous once
tests/compat has its own)."""


def nan_like(t):
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    import torch  # noqa: PLC0415  (only the torch tests use this module's helpers)

    return torch.full_like(t, float("nan"))
