"""Issue 9: hypothesis-driven malformed and mutated calls.

Each example builds fresh random arguments from a plain-data spec (wrong count, dtype,
shape, ndim, strides, alignment, device, other producers, non-tensors, views with the
negative bit...), calls a kernel through a dynamic, frozen or prepared call, possibly
after changing the frozen tensors (resize_, set_, .data, swap_tensors, a freed storage,
the caller's del), and requires a result equal to torch's or an exception -- never a
crash.  Refcounts of every argument are unchanged after each example, the functions keep
giving right results, and a replay of every spec leaves the process RSS flat.

The whole run is one child process (test_safety.run_isolated): a crash fails the test
with the spec that was running.
"""
from __future__ import annotations

import gc
import sys

import numpy as np
import psutil
import pytest
import test_safety as safety
import tvm_ffi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tvmfast

torch = pytest.importorskip("torch")

MAX_EXAMPLES = 1100
MIN_CALLS = 1000
REPLAY_ROUNDS = 4
RSS_SLACK = 8 << 20  # bytes the process may grow over REPLAY_ROUNDS - 2 replays of every spec

KERNEL_ARITY = {"add": 3, "add_dyn": 3, "scale": 4}
# Tensors a kernel may take (a right result is required if the call returns) ...
TENSOR_VARIANTS = ["misaligned", "offset_aligned", "numpy", "ffi_tensor", "neg_view", "requires_grad", "parameter",
                   "inference", "noncontig", "expanded", "alias0", "alias1"]
# ... and tensors it must refuse.
BAD_TENSORS = [
    "dtype:float64", "dtype:float16", "dtype:int32", "dtype:bool", "dtype:bfloat16", "dtype:complex64",
    "shape:+1", "shape:-1", "shape:0", "shape:x2", "ndim:2", "ndim:2t", "ndim:0", "numpy_f64", "numpy_noncontig",
    "meta", "sparse", "zerotensor", "storage_freed", "quantized",
]
NON_TENSORS = ["str", "nul_str", "bytes", "list", "tuple", "dict", "none", "object", "int", "big_int", "neg_big_int",
               "float", "nan", "bool", "ffi_shape", "ffi_function", "numpy_scalar", "type", "module"]
SCALAR_KINDS = ["int_for_float", "bool", "float_for_int", "none", "str", "tensor", "nan", "inf", "list"]
MUTATIONS = ["resize_big_back", "resize_smaller", "resize_bigger", "resize_2d", "resize_0", "set_fresh",
             "set_fresh_wrong_size", "set_offset", "data_f64", "data_fresh", "storage_freed", "storage_renewed",
             "inplace_mul", "swap", "del", "fill_nan"]

# 1/2 good tensors, 1/4 other tensors a kernel may take, 1/8 tensors it must refuse, 1/8 non-tensors
_GOOD, _VARIANT = st.just("good"), st.sampled_from(TENSOR_VARIANTS)
_BAD, _NON_TENSOR = st.sampled_from(BAD_TENSORS), st.sampled_from(NON_TENSORS)
ARG_STRATEGY = st.one_of(_GOOD, _VARIANT, _BAD, _GOOD, _VARIANT, _NON_TENSOR, _GOOD, _GOOD)

_state: dict = {"calls": 0, "ok": 0, "specs": [], "funcs": None}


def child_main(names: list[str]) -> None:
    safety.run_cases(sys.modules[__name__], names)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return safety.child_env(tmp_path_factory)


# ---------------------------------------------------------------------------
# specs (plain data, so hypothesis holds no tensors) -> arguments
# ---------------------------------------------------------------------------

@st.composite
def call_specs(draw):
    kernel = draw(st.sampled_from(sorted(KERNEL_ARITY)))
    arity = KERNEL_ARITY[kernel]
    form = draw(st.sampled_from(["dynamic", "frozen", "prepared"]))
    args = []
    for pos in range(arity):
        if kernel == "scale" and pos >= 2:
            args.append(draw(st.one_of(st.just("good"), st.sampled_from(SCALAR_KINDS))))
        else:
            args.append(draw(ARG_STRATEGY))
    return {
        "kernel": kernel,
        "n": draw(st.integers(0, 300)) if kernel == "add_dyn" else (64 if kernel == "scale" else safety.N),
        "form": form,
        "release_gil": draw(st.booleans()),
        "num_args": draw(st.booleans()),
        "args": args,
        "count": draw(st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1])),
        "frozen": sorted(draw(st.sets(st.integers(0, arity - 1), min_size=1, max_size=arity))),
        "mutations": draw(st.lists(st.tuples(st.integers(0, arity - 1), st.sampled_from(MUTATIONS)), max_size=2)),
        "calls": draw(st.integers(1, 2)),
    }


def _tensor(kind: str, n: int, args: list):
    if kind == "good":
        return torch.randn(n)
    if kind.startswith("dtype:"):
        return (torch.randn(n) * 4).to(getattr(torch, kind[6:]))
    simple = {
        "shape:+1": lambda: torch.randn(n + 1), "shape:-1": lambda: torch.randn(max(n - 1, 0)),
        "shape:0": lambda: torch.randn(0), "shape:x2": lambda: torch.randn(2 * n),
        "ndim:2": lambda: torch.randn(n, 1), "ndim:2t": lambda: torch.randn(1, n).t(),
        "ndim:0": lambda: torch.tensor(1.5), "noncontig": lambda: torch.randn(2 * n)[::2],
        "expanded": lambda: torch.randn(1).expand(n), "misaligned": lambda: torch.randn(n + 16)[3:3 + n],
        "offset_aligned": lambda: torch.randn(n + 32)[16:16 + n],
        "numpy": lambda: np.random.randn(n).astype(np.float32), "numpy_f64": lambda: np.random.randn(n),
        "numpy_noncontig": lambda: np.random.randn(2 * n).astype(np.float32)[::2],
        "ffi_tensor": lambda: tvm_ffi.from_dlpack(torch.randn(n)),
        "meta": lambda: torch.empty(n, device="meta"), "sparse": lambda: torch.randn(n).to_sparse(),
        "neg_view": lambda: torch._neg_view(torch.randn(n)),
        "requires_grad": lambda: torch.randn(n, requires_grad=True),
        "parameter": lambda: torch.nn.Parameter(torch.randn(n), requires_grad=False),
        "zerotensor": lambda: torch._efficientzerotensor(n),
        "quantized": lambda: torch.quantize_per_tensor(torch.randn(n), 0.1, 0, torch.qint8),
    }
    if kind in simple:
        return simple[kind]()
    if kind == "inference":
        with torch.inference_mode():
            return torch.randn(n)
    if kind == "storage_freed":
        t = torch.randn(n)
        t.untyped_storage().resize_(0)
        return t
    if kind in ("alias0", "alias1"):
        j = int(kind[-1])
        return args[j] if j < len(args) else torch.randn(n)
    return _non_tensor(kind)


def _non_tensor(kind: str):
    return {
        "str": lambda: "".join(["not", " a tensor"]), "nul_str": lambda: "a\x00b", "bytes": lambda: b"a\x00b",
        "list": lambda: [1.0, 2.0], "tuple": lambda: (1, 2), "dict": lambda: {"a": 1}, "none": lambda: None,
        "object": object, "int": lambda: 7, "big_int": lambda: 2 ** 70, "neg_big_int": lambda: -(2 ** 64),
        "float": lambda: 1.5, "nan": lambda: float("nan"), "bool": lambda: True,
        "ffi_shape": lambda: tvm_ffi.Shape([1, 2]), "ffi_function": lambda: tvm_ffi.get_global_func("testing.echo"),
        "numpy_scalar": lambda: np.float32(2.5), "type": lambda: torch.Tensor, "module": lambda: np,
    }[kind]()


def _scalar(kind: str, pos: int):
    if kind == "good":
        return float(np.random.randn()) if pos == 2 else int(np.random.randint(-5, 6))
    return {
        "int_for_float": lambda: 3, "bool": lambda: False, "float_for_int": lambda: 2.75, "none": lambda: None,
        "str": lambda: "1.5", "tensor": lambda: torch.randn(1), "nan": lambda: float("nan"),
        "inf": lambda: float("inf"), "list": lambda: [1],
    }[kind]()


def build_args(spec) -> list:
    args: list = []
    for pos, kind in enumerate(spec["args"]):
        if spec["kernel"] == "scale" and pos >= 2:
            args.append(_scalar(kind, pos))
        else:
            args.append(_tensor(kind, spec["n"], args))
    return args


def _storage_too_small(t) -> bool:
    """The tensor reaches beyond its storage (freed or shrunk under it)."""
    if t.numel() == 0:
        return False
    extent = t.storage_offset() + 1 + sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()))
    return t.untyped_storage().nbytes() < extent * t.element_size()


def _mutate(t, how: str, n: int) -> bool:
    """Change a torch tensor after freeze/prepare; False where torch refuses the change."""
    if (not isinstance(t, torch.Tensor) or t.is_sparse or t.is_quantized or t.device.type != "cpu"
            or t._is_zerotensor()):
        return False
    try:
        if how == "resize_big_back":
            shape = tuple(t.shape)
            t.resize_(1 << 16)
            t.resize_(shape)
        elif how == "resize_smaller":
            t.resize_(max(t.numel() // 2, 0))
        elif how == "resize_bigger":
            t.resize_(t.numel() + 64)
        elif how == "resize_2d":
            t.resize_(2, max(n // 2, 1))
        elif how == "resize_0":
            t.resize_(0)
        elif how == "set_fresh":
            t.set_(torch.randn(t.shape, dtype=t.dtype) if t.is_floating_point() else torch.zeros_like(t))
        elif how == "set_fresh_wrong_size":
            t.set_(torch.zeros(n + 5, dtype=t.dtype))
        elif how == "set_offset":
            t.set_(torch.zeros(4 * n + 64, dtype=t.dtype).untyped_storage(), 16, (n,))
        elif how == "data_f64":
            t.data = torch.randn(n, dtype=torch.float64)
        elif how == "data_fresh":
            t.data = torch.randn(n)
        elif how == "storage_freed":
            if t.storage_offset() != 0:
                return False  # a freed storage with an offset is a wild pointer for torch itself
            t.untyped_storage().resize_(0)
        elif how == "storage_renewed":
            nbytes = t.untyped_storage().nbytes()
            t.untyped_storage().resize_(0)
            t.untyped_storage().resize_(nbytes)
        elif how in ("inplace_mul", "fill_nan") and _storage_too_small(t):
            return False  # torch's own in-place ops write past a shrunk storage (they crash)
        elif how == "inplace_mul":
            t.mul_(2)
        elif how == "swap":
            other = torch.randn(t.shape).to(t.dtype)
            torch.utils.swap_tensors(t, other)
        elif how == "fill_nan":
            t.fill_(float("nan"))
        else:
            raise AssertionError(how)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------
# the expected outcome: torch's result, or any exception
# ---------------------------------------------------------------------------

def _as_torch(x):
    """A torch view of a tensor argument (same memory), or None for non-tensors."""
    if isinstance(x, torch.Tensor):
        if x.is_sparse or x.is_quantized or x.device.type != "cpu" or x._is_zerotensor():
            return None
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, tvm_ffi.Tensor):
        return torch.from_dlpack(x)
    return None


def _usable(t, n_expected: int | None) -> bool:
    """A float32 vector of the expected length whose storage holds every element it addresses."""
    if t is None or t.dtype != torch.float32 or t.dim() != 1:
        return False
    if n_expected is not None and t.shape[0] != n_expected:
        return False
    if t.numel() == 0:
        return True
    last = t.storage_offset() + (t.shape[0] - 1) * t.stride(0)
    return t.stride(0) >= 0 and 4 * (last + 1) <= t.untyped_storage().nbytes()


def expected_outcome(kernel: str, current: list | None):
    """(out view, expected values) of the call with these arguments, or None where the
    call must raise (rt_mod raises there too)."""
    if current is None:
        return None
    if kernel == "scale":
        a, out, alpha, shift = current
        a_t, out_t = _as_torch(a), _as_torch(out)
        if not (_usable(a_t, 64) and _usable(out_t, 64)):
            return None
        if type(alpha) not in (int, float, bool) or type(shift) not in (int, bool):
            return None
        alpha32 = torch.tensor(float(alpha), dtype=torch.float32)
        return out_t, a_t.clone() * alpha32 + float(shift)
    a_t, b_t, out_t = (_as_torch(x) for x in current)
    n = safety.N if kernel == "add" else (a_t.shape[0] if a_t is not None and a_t.dim() == 1 else None)
    if not all(_usable(t, n) for t in (a_t, b_t, out_t)):
        return None
    return out_t, a_t.clone() + b_t.clone()


def _poison(out_t, inputs) -> None:
    """NaN the output first (an unwritten element cannot pass), unless it shares memory with an input."""
    if out_t.numel() == 0:
        return
    shared = out_t.untyped_storage().data_ptr()
    if any(t is not None and t.untyped_storage().data_ptr() == shared for t in inputs):
        return
    out_t.fill_(float("nan"))


def _check_result(kernel: str, kind: str, value, expect) -> None:
    if kind == "error":
        assert isinstance(value, Exception)
        return
    assert expect is not None, f"the call returned {value!r} for arguments it must refuse (rt_mod raises)"
    assert value is None, f"the kernel returned {value!r}"
    out_t, expected = expect
    tol = 1e-5 if kernel == "scale" else 0
    torch.testing.assert_close(out_t, expected, rtol=tol, atol=tol, equal_nan=True,
                               msg=lambda m: f"result differs from torch's: {m}")


# ---------------------------------------------------------------------------
# one example
# ---------------------------------------------------------------------------

def _functions():
    if _state["funcs"] is None:
        funcs = {}
        for kernel, arity in KERNEL_ARITY.items():
            mod = safety.kernel(kernel)
            for gil in (False, True):
                for with_n in (False, True):
                    f = tvmfast.bind(mod, release_gil=gil, num_args=arity if with_n else None)
                    funcs[kernel, gil, with_n] = f
                    _good_call(kernel, f)  # also teaches f its argument count
        _state["funcs"] = funcs
    return _state["funcs"]


def _good_call(kernel: str, f) -> None:
    if kernel == "scale":
        a, out = torch.randn(64), torch.full((64,), float("nan"))
        f(a, out, 0.5, 2)
        torch.testing.assert_close(out, a * 0.5 + 2, rtol=1e-6, atol=1e-6)
        return
    n = safety.N if kernel == "add" else int(np.random.randint(1, 200))
    a, b, out = torch.randn(n), torch.randn(n), torch.full((n,), float("nan"))
    assert f(a, b, out) is None
    assert torch.equal(out, a + b), "the function no longer computes a + b"


def _refcounted(x) -> bool:
    return not isinstance(x, (int, float, bool, str, bytes, type(None), type, type(np)))


OUT_POS = {"add": 2, "add_dyn": 2, "scale": 1}


def _make_call(f, spec, args: list, extra: list, frozen: list):
    """(callable, its arguments, effective count change); callable None when freeze/prepare raised."""
    arity = KERNEL_ARITY[spec["kernel"]]
    form, count = spec["form"], spec["count"]
    if form == "prepared":
        prep = args + extra if count >= 0 else args[:arity + count]
        kind, fn = safety.outcome(lambda: f.prepare(*prep))
        _state["calls"] += 1
        return (fn if kind == "ok" else None), [], count
    dyn = list(args) if form == "dynamic" else [args[i] for i in range(arity) if i not in frozen]
    if count < 0 and not dyn:
        count = 0  # nothing left to leave out
    dyn = dyn + extra if count > 0 else dyn[:len(dyn) + count]
    if form == "dynamic":
        return f, dyn, count
    kind, fn = safety.outcome(lambda: f.freeze({p: args[p] for p in frozen}))
    _state["calls"] += 1
    return (fn if kind == "ok" else None), dyn, count


def run_spec(spec) -> None:
    kernel = spec["kernel"]
    f = _functions()[kernel, spec["release_gil"], spec["num_args"]]
    arity = KERNEL_ARITY[kernel]
    args = build_args(spec)
    extra = [torch.randn(spec["n"])] if spec["count"] > 0 else []
    objs = [x for x in args + extra if _refcounted(x)]
    before = [sys.getrefcount(x) for x in objs]
    frozen = {"frozen": spec["frozen"], "prepared": list(range(arity))}.get(spec["form"], [])
    stand_in: dict = {}  # position -> copy of a tensor the caller dropped
    fn = call_args = current = expect = value = None
    try:
        fn, call_args, count = _make_call(f, spec, args, extra, frozen)
        if fn is None:
            return
        for pos, how in spec["mutations"]:
            if how != "del":
                _mutate(args[pos], how, spec["n"])
            elif (pos in frozen and pos != OUT_POS[kernel] and _as_torch(args[pos]) is not None
                  and isinstance(args[pos], torch.Tensor) and count == 0 and pos not in stand_in):
                # the caller drops its references: only the frozen function holds the tensor now
                stand_in[pos] = args[pos].detach().clone()
                gone = id(args[pos])
                before = [c for x, c in zip(objs, before, strict=True) if id(x) != gone]
                objs = [x for x in objs if id(x) != gone]
                args = [None if id(x) == gone else x for x in args]
        for _ in range(spec["calls"]):
            current = [stand_in.get(i, args[i]) for i in range(arity)] if count == 0 else None
            expect = expected_outcome(kernel, current)
            if expect is not None:
                _poison(expect[0], [_as_torch(x) for i, x in enumerate(current) if i != OUT_POS[kernel]])
            kind, value = safety.outcome(lambda: fn(*call_args))
            _state["calls"] += 1
            _state["ok"] += kind == "ok"
            _check_result(kernel, kind, value, expect)
            value = None
    finally:
        fn = call_args = current = expect = value = None
        after = [sys.getrefcount(x) for x in objs]
        for generation in (0, 2):  # reference cycles (chained exceptions) first, cheaply if possible
            if after == before:
                break
            gc.collect(generation)
            after = [sys.getrefcount(x) for x in objs]
        assert after == before, f"refcounts of the arguments changed: {before} -> {after}"
        _good_call(kernel, f)


@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), print_blob=False)
@given(spec=call_specs())
def fuzz_calls(spec):
    print(f"spec {spec}", flush=True)
    _state["specs"].append(spec)
    run_spec(spec)


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def _under_address_sanitizer() -> bool:
    """Whether this process runs with ASan (the tox env ``sanitize`` preloads libasan). There,
    freed memory waits in ASan's quarantine (256 MiB by default) before it is reused, so the
    process grows with every free until the quarantine is full: RSS says nothing about leaks."""
    try:
        with open("/proc/self/maps") as maps:
            return "libasan" in maps.read()
    except OSError:
        return False


def _case_fuzz():
    funcs = _functions()
    long_lived = list(funcs.values())
    before = [sys.getrefcount(x) for x in long_lived]
    fuzz_calls()
    print(f"{len(_state['specs'])} examples, {_state['calls']} malformed or mutated calls "
          f"({_state['ok']} returned a result)", flush=True)
    assert _state["calls"] >= MIN_CALLS
    # replay every spec (fresh tensors each time): the process must not grow
    specs = list(_state["specs"])
    sizes = []
    for _ in range(REPLAY_ROUNDS):
        for spec in specs:
            run_spec(spec)
        sizes.append(_rss())
    print(f"RSS per replay round (MiB): {[round(s / 2**20, 1) for s in sizes]}", flush=True)
    grown = sizes[-1] - sizes[1]
    if _under_address_sanitizer():
        # (the same replay in an ordinary build, every other run of this suite, checks the growth)
        print("ASan build: RSS growth not checked (freed memory sits in ASan's quarantine)", flush=True)
    else:
        assert grown < RSS_SLACK, \
            f"RSS grew by {grown / 2**20:.1f} MiB over {REPLAY_ROUNDS - 2} replays of {len(specs)} specs"
    gc.collect()
    assert [sys.getrefcount(x) for x in long_lived] == before, "refcounts of the bound functions changed"
    for (kernel, _, _), f in funcs.items():
        for _ in range(3):
            _good_call(kernel, f)


def test_fuzz_malformed_and_mutated_calls(env):
    safety.assert_all_ok(safety.run_isolated("test_fuzz", ["_case_fuzz"], env=env, timeout=600))
