import importlib
import os

import pytest
import torch

# On the GPU machine: a module to import first (shared/device/on_device.py loads TVM's
# CUDA runtime into the runtime-only TVM there).
if os.environ.get("TVMFAST_PRELOAD"):
    importlib.import_module(os.environ["TVMFAST_PRELOAD"])

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


def nan_like(t):
    """Output buffers are poisoned so that an unwritten element cannot pass."""
    return torch.full_like(t, float("nan"))
