"""Shared fixtures.  Nothing here imports torch or apache-tvm at collection time, so the suite
runs (with what needs them skipped) where either is absent: test modules that need torch skip
without it (pytest.importorskip), and a test whose kernel cannot be built because apache-tvm
is not installed is reported as skipped (apache-tvm is needed to compile kernels, not to call
them).

The helpers the test modules share are the package ``support`` (tests/support/): this folder is
put on sys.path here, whatever pytest's import mode, and wherever the folder was copied to
(.ci/test-installed runs a copy outside the source tree)."""
import importlib.util
import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from support import tvm_kernels as kernels  # noqa: E402

TVM_INSTALLED = importlib.util.find_spec("tvm") is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Without apache-tvm, a test (or fixture) that tried to build a TVM kernel - support.tvm_kernels
    imports tvm only then - is a skip, not a failure.  Only that exact error qualifies."""
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    if (not TVM_INSTALLED and excinfo is not None and excinfo.errisinstance(ModuleNotFoundError)
            and excinfo.value.name == "tvm"):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           "Skipped: builds a TVM kernel, and apache-tvm is not installed")


def _build(builder, *args):
    pytest.importorskip("tvm", reason="apache-tvm builds the test kernels")
    return builder(*args)


@pytest.fixture(scope="session")
def add_mod():
    return _build(kernels.build_add, 128, "float32")


@pytest.fixture(scope="session")
def add_fp16_mod():
    return _build(kernels.build_add, 256, "float16")


@pytest.fixture(scope="session")
def add_dyn_mod():
    return _build(kernels.build_add_dynamic, "float32")


@pytest.fixture(scope="session")
def scale_mod():
    return _build(kernels.build_scale, 64)


@pytest.fixture(scope="session")
def gemv_mod():
    return _build(kernels.build_int4_gemv, 256, 512)


@pytest.fixture
def gen():
    torch = pytest.importorskip("torch")
    # Fresh random inputs every test, reproducible from the printed seed on failure.
    seed = torch.seed() % (2**31)
    g = torch.Generator().manual_seed(seed)
    print(f"torch seed {seed}")
    return g


@pytest.fixture
def rng():
    import numpy as np  # noqa: PLC0415

    seed = int(np.random.SeedSequence().entropy % (2**31))
    print(f"numpy seed {seed}")
    return np.random.default_rng(seed)
