"""tvmfast without torch: numpy arrays (and any DLPack producer) through bound functions, for
TVM kernels and for functions made with apache-tvm-ffi alone (``tvm_ffi.cpp.load_inline``).

Nothing here imports torch, so this module is what the no-torch install runs; with torch
installed it runs too (and checks that tvmfast itself never imports it).  (A misaligned numpy output:
test_aligned_copies.py, which runs that test without torch too.)"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tvm_ffi

import tvmfast
from support.buffers import aligned


def test_import_bind_and_call_with_torch_unimportable():
    """With torch made unimportable (as if not installed), `import tvmfast`, bind and numpy
    calls work.  (apache-tvm-ffi itself imports torch when it is installed; tvmfast adds no
    import of its own.)"""
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # `import torch` now raises ImportError
        import numpy as np
        import tvm_ffi, tvmfast
        echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
        x = np.arange(6, dtype="float32")
        y = echo(x)
        assert np.array_equal(np.from_dlpack(y), x)
        assert echo(7) == 7 and echo("s") == "s"
        assert sys.modules["torch"] is None
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.fixture(scope="module")
def add_mod():
    pytest.importorskip("tvm", reason="apache-tvm builds the test kernel")
    from support import tvm_kernels as kernels  # noqa: PLC0415

    return kernels.build_add(128, "float32")


def test_numpy_arrays_through_a_tvm_kernel(add_mod, rng):
    f = tvmfast.bind(add_mod)
    a = aligned(rng.standard_normal(128, dtype=np.float32))
    b = aligned(rng.standard_normal(128, dtype=np.float32))
    out = aligned(np.full(128, np.nan, dtype=np.float32))
    f(a, b, out)
    np.testing.assert_array_equal(out, a + b)
    # the same answer as the module itself
    expected = aligned(np.full(128, np.nan, dtype=np.float32))
    add_mod(a, b, expected)
    np.testing.assert_array_equal(out, expected)


def test_numpy_errors_match_the_module(add_mod):
    f = tvmfast.bind(add_mod)
    a = aligned(np.zeros(128, dtype=np.float32))
    wrong = aligned(np.zeros(64, dtype=np.float32))
    with pytest.raises(Exception) as direct:
        add_mod(a, wrong, a)
    with pytest.raises(Exception) as bound:
        f(a, wrong, a)
    assert type(bound.value) is type(direct.value)
    assert str(bound.value) == str(direct.value)


@pytest.fixture(scope="module")
def inline_mod():
    """A function built with apache-tvm-ffi alone (no apache-tvm): a C++ compiler is needed."""
    try:
        return tvm_ffi.cpp.load_inline(
            name="tvmfast_scale_add",
            cpp_sources=r"""
                void scale_add(tvm::ffi::TensorView x, tvm::ffi::TensorView y, double alpha) {
                  TVM_FFI_ICHECK(x.ndim() == 1 && y.ndim() == 1) << "1-D tensors expected";
                  TVM_FFI_ICHECK(x.size(0) == y.size(0)) << "x and y must have the same length";
                  const float* xs = static_cast<const float*>(x.data_ptr());
                  float* ys = static_cast<float*>(y.data_ptr());
                  for (int64_t i = 0; i < x.size(0); ++i) ys[i] += static_cast<float>(alpha) * xs[i];
                }
            """,
            functions=["scale_add"],
        )
    except Exception as exc:  # no compiler on this machine
        pytest.skip(f"tvm_ffi.cpp.load_inline cannot build here: {type(exc).__name__}: {exc}")


def test_load_inline_function_with_numpy(inline_mod, rng):
    f = tvmfast.bind(inline_mod, "scale_add")
    n = int(rng.integers(1, 1000))
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)
    expected = y + np.float32(0.5) * x
    f(x, y, 0.5)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    # frozen and prepared calls see the arrays' current contents
    frozen = f.freeze({0: x})
    before = y.copy()
    frozen(y, 2.0)
    np.testing.assert_allclose(y, before + np.float32(2.0) * x, rtol=1e-6)
    x[:] = 1.0
    prepared = f.prepare(x, y, -1.0)
    before = y.copy()
    prepared()
    np.testing.assert_allclose(y, before - 1.0, rtol=1e-6)


def test_load_inline_errors_match_the_function(inline_mod):
    f = tvmfast.bind(inline_mod, "scale_add")
    x, y = np.zeros(3, dtype=np.float32), np.zeros(4, dtype=np.float32)
    with pytest.raises(Exception) as direct:
        inline_mod.scale_add(x, y, 1.0)
    with pytest.raises(Exception) as bound:
        f(x, y, 1.0)
    assert type(bound.value) is type(direct.value)
    assert "same length" in str(bound.value) and str(bound.value) == str(direct.value)
    with pytest.raises(TypeError, match="argument #2"):
        f(x, x, object())
