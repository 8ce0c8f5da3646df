"""Shared fixtures.  Nothing here imports torch or apache-tvm at collection time, so the suite
runs (with what needs them skipped) where either is absent: the kernel fixtures skip without
apache-tvm, `gen` skips without torch."""
import pytest

from bench import kernels


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
