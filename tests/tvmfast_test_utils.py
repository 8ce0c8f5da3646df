"""Helpers shared by the test modules (a plain module: `conftest` is ambiguous once
tests/compat has its own)."""
import torch


def nan_like(t):
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    return torch.full_like(t, float("nan"))
