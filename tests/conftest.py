import pytest
import torch

from bench import kernels


@pytest.fixture(scope="session")
def add_mod():
    return kernels.build_add(128, "float32")


@pytest.fixture(scope="session")
def add_fp16_mod():
    return kernels.build_add(256, "float16")


@pytest.fixture(scope="session")
def add_dyn_mod():
    return kernels.build_add_dynamic("float32")


@pytest.fixture(scope="session")
def scale_mod():
    return kernels.build_scale(64)


@pytest.fixture(scope="session")
def gemv_mod():
    return kernels.build_int4_gemv(256, 512)


@pytest.fixture
def gen():
    # Fresh random inputs every test, reproducible from the printed seed on failure.
    seed = torch.seed() % (2**31)
    g = torch.Generator().manual_seed(seed)
    print(f"torch seed {seed}")
    return g

