"""How torch tensors reach the callee: tvmfast's direct export, checked by its self-test on this
torch, or torch's DLPack exchange API (TVMFAST_TORCH_DIRECT=0); torch's lazy negation and
conjugation bits, which DLPack cannot carry, resolved or refused naming the argument -- never
passed as if unset (inputs, outputs, views, subclasses, through a callback); a copy-on-write clone
materialised, never written through; functorch wrapper tensors refused with a pointer to
as_torch_op; torch's current-stream hook left alone for CPU tensors and other objects.

Cases that can crash run in a child process (support.isolation.run_isolated).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import tvm_ffi

import tvmfast
from support.helpers import arg_named, assert_clear_error, nan_like, needs_tvm, raises_arg_error
from support.isolation import (
    WORKER_CPP,
    N,
    as_numpy,
    assert_all_ok,
    child_env,
    outcome,
    run_cases,
    run_isolated,
)

torch = pytest.importorskip("torch")

from support.add_checks import assert_add_works, bind_add, nan_tensor, rand  # noqa: E402

cpp = WORKER_CPP.function  # add_one: y = x + 1, any address


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Children's environment: the test kernels and C++ functions (support.isolation)."""
    return child_env(tmp_path_factory)


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory):
    """Children's environment: support.isolation.WORKER_CPP's C++ functions."""
    return WORKER_CPP.env(tmp_path_factory)


def child_main(names: list[str]) -> None:
    run_cases(sys.modules[__name__], names)


# ---------------------------------------------------------------------------
# The direct export and torch's exchange API
# ---------------------------------------------------------------------------


def test_direct_torch_export_is_active(add_mod):
    """The fast torch path passed its self-test on this torch (disabled only by env)."""
    f = tvmfast.bind(add_mod)
    a = torch.randn(128)
    f(a, a, torch.empty(128))
    if os.environ.get("TVMFAST_TORCH_DIRECT", "1") != "0":
        assert tvmfast._core._torch_direct_export_enabled()
        state = tvmfast._core._torch_direct_export_state()
        # torch 2.14 added `bool read_only` to at::toDLPackNonOwning: that signature must be
        # the one found there, never the old one.
        torch_version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
        signature = "tensor, dltensor, read_only" if torch_version >= (2, 14) else "tensor, dltensor)"
        assert state.startswith("on (") and signature in state, state
        assert tvmfast._core._torch_lazy_view_check() == "keyset"


@needs_tvm
def test_exchange_api_path_without_direct_export(tmp_path):
    """TVMFAST_TORCH_DIRECT=0: torch tensors through torch's DLPack C exchange API."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import torch, tvmfast
        from tvmfast import _core
        from support import tvm_kernels as kernels
        f = tvmfast.bind(kernels.build_add(128))
        a, b = torch.randn(128), torch.randn(128)
        out = torch.full((128,), float("nan"))
        f(a, b, out)
        assert torch.equal(out, a + b)
        assert not _core._torch_direct_export_enabled()
        assert _core._torch_direct_export_state() == "off (disabled by TVMFAST_TORCH_DIRECT=0)"
        # lazy neg/conj views are still found at C level (one load per tensor)
        assert _core._torch_lazy_view_check() == "keyset"
        try:
            f(a, torch.empty(128, device="meta"), out)
        except RuntimeError as e:
            assert "argument #1" in str(e) and "meta" in str(e), e
        else:
            raise AssertionError("no error")
        print("ok")
    """)
    tests_dir = os.path.dirname(os.path.abspath(__file__))  # support.tvm_kernels
    pythonpath = os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TVMFAST_TORCH_DIRECT="0", PYTHONPATH=pythonpath)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.skipif(not hasattr(torch, "_lazy_clone"), reason="torch without copy-on-write tensors")
def test_copy_on_write_output_is_materialised_not_shared(add_mod, gen):
    """A lazy (copy-on-write) clone passed as the output: the kernel writes the clone's own
    copy, never the storage it shares with the original (as rt_mod does through the
    exchange API)."""
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    original = torch.randn(128, generator=gen)
    kept = original.clone()
    out = torch._lazy_clone(original)
    f(a, b, out)
    assert torch.equal(out, a + b)
    assert torch.equal(original, kept)
    # and as an input: read, not copied or changed
    source = torch._lazy_clone(a)
    out2 = nan_like(a)
    f(source, b, out2)
    assert torch.equal(out2, a + b) and torch.equal(source, a)


# ---------------------------------------------------------------------------
# Lazy negation and conjugation bits: resolved or refused, never silently wrong
# ---------------------------------------------------------------------------


def test_lazy_neg_and_conj_views_are_refused(add_mod, gen):
    """DLPack has no field for torch's lazy negation/conjugation bits (rt_mod computes as
    if they were not set): a clear error naming the argument, and resolved views work."""
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    for bad in [torch._neg_view(b), torch._neg_view(b)[:], torch._neg_view(b).view(128)]:
        with pytest.raises(ValueError, match=r"tvmfast: argument #1: tensor has its negative bit set.*resolve_neg"):
            f(a, bad, out)
        with pytest.raises(ValueError, match="negative bit"):
            f.prepare(a, bad, out)()
    f(a, torch._neg_view(b).resolve_neg(), out)
    assert torch.equal(out, a - b)
    echo = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))
    z = torch.randn(4, dtype=torch.cfloat, generator=gen)
    with pytest.raises(ValueError, match="conjugate bit set.*resolve_conj"):
        echo(z.conj())
    assert torch.equal(echo(z.conj().resolve_conj()), z.conj())


def _neg_view_check(call, pos: int, expected_fn, out) -> None:
    out.fill_(float("nan"))
    kind, value = outcome(call)
    if kind == "error":
        assert_clear_error(value, (TypeError, ValueError, RuntimeError), r"tvmfast|neg|conj")
        arg_named(value, pos)
    else:
        assert torch.equal(out, expected_fn()), "negative view passed as if the bit were not set"


@pytest.mark.parametrize("pos", [0, 1])
def test_neg_view_input_resolved_or_refused(add_mod, gen, pos):
    f = tvmfast.bind(add_mod, num_args=3)
    a, b, out = torch.randn(N, generator=gen), torch.randn(N, generator=gen), nan_tensor()
    args = [a, b]
    args[pos] = torch._neg_view(args[pos])
    assert args[pos].is_neg()
    _neg_view_check(lambda: f(*args, out), pos, lambda: args[0] + args[1], out)
    _neg_view_check(lambda: f.prepare(*args, out)(), pos, lambda: args[0] + args[1], out)
    g = f.freeze({pos: args[pos]})
    _neg_view_check(lambda: g(args[1 - pos], out), pos, lambda: args[0] + args[1], out)
    # the bit is a property of the view: the base tensor still works
    out.fill_(float("nan"))
    f(a, b, out)
    assert torch.equal(out, a + b)


def test_neg_view_output_resolved_or_refused(add_mod, gen):
    f = tvmfast.bind(add_mod)
    a, b = torch.randn(N, generator=gen), torch.randn(N, generator=gen)
    base = torch.full((N,), float("nan"))
    out = torch._neg_view(base)
    kind, value = outcome(lambda: f(a, b, out))
    if kind == "error":
        assert_clear_error(value, (TypeError, ValueError, RuntimeError), r"tvmfast|neg|conj")
        arg_named(value, 2)
    else:
        # the view reads a + b (so the memory holds -(a + b))
        assert torch.equal(out, a + b), "written through a negative view as if the bit were not set"


def _case_conj_view():
    """Through a Python callback (which needs owned tensors): a child, as callbacks crashed."""
    copy_back = tvm_ffi.convert(lambda t: np.from_dlpack(t).copy())
    z = torch.randn(12, dtype=torch.complex64)
    zc = z.conj()
    assert zc.is_conj()
    f = tvmfast.bind(copy_back)
    for call in (lambda: f(zc), lambda: f.prepare(zc)()):
        kind, value = outcome(call)
        if kind == "error":
            assert_clear_error(value, (TypeError, ValueError, RuntimeError, BufferError), r"conj")
            arg_named(value, 0)
        else:
            np.testing.assert_array_equal(as_numpy(value), zc.resolve_conj().numpy())
    assert np.array_equal(as_numpy(f(z)), z.numpy())


def test_conj_view_resolved_or_refused(env):
    assert_all_ok(run_isolated("test_torch_export", ["_case_conj_view"], env=env))


def _case_neg_view_exchange_api():
    """The same through torch's DLPack C exchange API (TVMFAST_TORCH_DIRECT=0)."""
    assert os.environ.get("TVMFAST_TORCH_DIRECT") == "0"
    f = bind_add(num_args=3)
    a, b, out = rand(), rand(), nan_tensor()
    nb = torch._neg_view(b)
    _neg_view_check(lambda: f(a, nb, out), 1, lambda: a + nb, out)
    _neg_view_check(lambda: f.prepare(a, nb, out)(), 1, lambda: a + nb, out)
    assert_add_works(f)


def test_neg_view_through_exchange_api(env):
    env = dict(env, TVMFAST_TORCH_DIRECT="0")
    assert_all_ok(run_isolated("test_torch_export", ["_case_neg_view_exchange_api"], env=env))


# torch.Tensor subclasses are torch tensors, wherever defined.


class MySub(torch.Tensor):
    pass


def _case_subclass_lazy_view_refused():
    f = tvmfast.bind(cpp("add_one"))
    x = torch.randn(16)
    neg = torch._neg_view(x).as_subclass(MySub)
    raises_arg_error(lambda: f(neg, torch.empty(16)), 0, "negative bit", "resolve_neg")
    out = torch.full((16,), float("nan"))
    f(x.as_subclass(MySub), out)
    assert torch.equal(out, x + 1)


def test_subclass_lazy_view(worker_env):
    for direct in ("1", "0"):
        e = dict(worker_env, TVMFAST_TORCH_DIRECT=direct)
        assert_all_ok(run_isolated("test_torch_export", ["_case_subclass_lazy_view_refused"], env=e))


# ---------------------------------------------------------------------------
# functorch wrapper tensors; the current-stream hook
# ---------------------------------------------------------------------------


def test_bound_function_under_vmap_says_what_to_do(add_mod):
    """A bound function called directly under torch.func gets wrapper tensors without data:
    one clear line pointing to as_torch_op."""
    f = tvmfast.bind(add_mod)
    a, out = torch.randn(3, 128), torch.empty(3, 128)
    with pytest.raises(RuntimeError, match=r"argument #0: .*torch.func \(vmap/grad\) wrapper tensor.*as_torch_op"):
        torch.vmap(lambda x, o: f(x, x, o))(a, out)


def test_stream_hook_ignores_cpu_and_foreign_objects():
    from tvmfast._torch import current_stream

    assert current_stream(torch.randn(2), 1, 0) is None        # a CPU device type
    assert current_stream(object(), 2, 0) is None              # not a torch tensor
