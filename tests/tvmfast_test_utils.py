"""Helpers shared by the test modules (a plain module: `conftest` is ambiguous once
tests/compat has its own)."""
import importlib.util

import pytest

# For tests that build a TVM kernel in a child process (in-process ones skip by themselves:
# see conftest.py).
needs_tvm = pytest.mark.skipif(importlib.util.find_spec("tvm") is None,
                               reason="builds a TVM kernel, and apache-tvm is not installed")


def nan_like(t):
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    import torch  # noqa: PLC0415  (only the torch tests use this module's helpers)

    return torch.full_like(t, float("nan"))
