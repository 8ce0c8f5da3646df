"""Every test under tests/compat runs twice: "direct" (the upstream test as it is) and "bind"
(every function it obtains routed through tvmfast.bind: see tvmfast_compat.py).

The vendored modules come from apache/tvm-ffi and apache/tvm (README.md in this folder: source
commits, what was left out and why, every edit).  A test that only checks the function object
itself rather than what calling it does would be excluded from bind mode in BIND_EXCLUDED, with
the reason; a test that has such a check among call checks keeps running, with that check
guarded by ``tvmfast_compat.direct_mode()`` in the vendored file (marked "tvmfast:").
"""
from __future__ import annotations

import importlib.util
import os

import pytest
import tvmfast_compat

# The modules vendored from apache/tvm build kernels: without apache-tvm there is nothing to run.
collect_ignore_glob = [] if importlib.util.find_spec("tvm") else ["test_tvm_*.py"]

# "file::test" (parameters ignored) -> why the upstream test cannot run in tvmfast's suite at all.
SKIPPED = {
    "test_ffi_object.py::test_get_registered_type_keys":
        "assumes only tvm_ffi's own types are registered; this suite also loads apache-tvm (runtime.* types)",
}

# "file::test" (parameters ignored) -> why bind mode does not apply.
# (None so far: the few checks of that kind sit among call checks, and are guarded in place.)
BIND_EXCLUDED: dict[str, str] = {}


def _key(item) -> str:
    return f"{os.path.basename(item.path)}::{item.originalname}"


@pytest.fixture(params=["direct", "bind"], autouse=True)
def call_mode(request, monkeypatch):
    """The mode this test runs in (both, for every test of this folder)."""
    mode = request.param
    if _key(request.node) in SKIPPED:
        pytest.skip(SKIPPED[_key(request.node)])
    if mode == "bind":
        reason = BIND_EXCLUDED.get(_key(request.node))
        if reason is not None:
            pytest.skip(f"not about calls through bind: {reason}")
        tvmfast_compat.route_through_bind(monkeypatch, request.module)
    tvmfast_compat.MODE = mode
    try:
        yield mode
    finally:
        tvmfast_compat.MODE = "direct"
