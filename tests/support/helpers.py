"""Small helpers shared by the test modules (importing this module imports neither torch nor
apache-tvm): a skip mark, poisoned output buffers, and checks of tvmfast's error messages."""
import importlib.util
import re

import pytest

# For tests that build a TVM kernel in a child process (in-process ones skip by themselves:
# see conftest.py).
needs_tvm = pytest.mark.skipif(importlib.util.find_spec("tvm") is None,
                               reason="builds a TVM kernel, and apache-tvm is not installed")


def nan_like(t):
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    import torch  # noqa: PLC0415  (only the torch tests use this helper)

    return torch.full_like(t, float("nan"))


def assert_clear_error(exc: BaseException, types, *patterns: str) -> None:
    assert isinstance(exc, types), f"expected {types}, got {type(exc).__name__}: {exc}"
    for pattern in patterns:
        assert re.search(pattern, str(exc), re.S), f"error message {str(exc)!r} does not match {pattern!r}"


def arg_named(err: BaseException, pos: int) -> None:
    assert re.search(rf"(argument|arg|#)\s*#?{pos}\b", str(err)), f"error does not name argument {pos}: {err}"


def raises_arg_error(call, pos: int, *words: str) -> str:
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"tvmfast: argument #{pos}: "), msg
    for word in words:
        assert word in msg, msg
    return msg
