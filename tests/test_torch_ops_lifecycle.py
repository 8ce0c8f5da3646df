"""The life of an op made by as_torch_op: registration, first use, calls, re-registration, fork.  What an
op made by ``f.as_torch_op`` must do, on its C kernel (native ops on, the default) and where stated on its
Python kernel too (``TVMFAST_NATIVE_OP=0``):

* registration refuses an op that neither writes nor returns anything (torch.compile would drop its call), and
  a function that returns a tensor from an op registered without ``returns=`` raises, eager and compiled;
* a refused call (an inference tensor written outside inference mode) bumps no version counter first, so a
  tensor saved for backward stays usable;
* a call that takes the op's Python kernel frees every tensor it was given (weakref, RSS, refcount), for every
  reason a call takes it;
* no deadlock or hang: an AOTInductor package whose op's function calls Python from a worker thread; an op
  registered again from inside its own call, while other threads keep calling it, or in a child forked while
  another thread is inside a call; the first tvmfast call or as_torch_op of a process under a torch function or
  dispatch mode; a fork during the one-time torch set-up;
* more than 512 op names, more than 26 written tensors, the first as_torch_op inside ``torch.inference_mode()``,
  and ``release_gil`` changed after registration.

Every result is compared with torch on fresh random inputs.  Every case that can hang runs in a child process
(support.isolation.run_isolated) with a timeout; a fork's child is waited for with a timeout and killed after it.
"""
from __future__ import annotations

import concurrent.futures
import gc
import itertools
import json
import os
import signal
import sys
import threading
import time
import weakref

import pytest
import tvm_ffi

torch = pytest.importorskip("torch")

import tvmfast  # noqa: E402
from support import isolation  # noqa: E402
from support import tvm_kernels as kernels  # noqa: E402
from support.helpers import needs_tvm  # noqa: E402
from support.torch_ops import tvmfast_frames  # noqa: E402
from tvmfast import _core  # noqa: E402

pytestmark = needs_tvm

MODULE = "test_torch_ops_lifecycle"
NS = "tvmfast_test_op_lifecycle"
LIBS_ENV = "TVMFAST_TEST_OP_LIFECYCLE_LIBS"
AOTI_ENV = "TVMFAST_TEST_OP_LIFECYCLE_AOTI"
NOTE = "tvmfast_test.native_op_note"  # the global function add_via_thread calls from its worker thread
_IDS = itertools.count()

CPP_NAME = "tvmfast_native_op_reliability"
CPP_FUNCTIONS = ["add3", "sub3", "write_two", "copy_bytes", "add_via_thread", "busy_add_one"]
CPP_SOURCE = r"""
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <chrono>
#include <cstring>
#include <thread>

namespace ffi = tvm::ffi;

static const float* f32_in(const ffi::TensorView& t) {
  return reinterpret_cast<const float*>(static_cast<const char*>(t.data_ptr()) + t.byte_offset());
}
static float* f32_out(const ffi::TensorView& t) {
  return reinterpret_cast<float*>(static_cast<char*>(t.data_ptr()) + t.byte_offset());
}
static void check_f32(const ffi::TensorView& a, const ffi::TensorView& b, const ffi::TensorView& c) {
  DLDataType f32{kDLFloat, 32, 1};
  TVM_FFI_ICHECK(a.ndim() == 1 && b.ndim() == 1 && c.ndim() == 1) << "need 1-D tensors";
  TVM_FFI_ICHECK(a.dtype() == f32 && b.dtype() == f32 && c.dtype() == f32) << "need float32";
  TVM_FFI_ICHECK(a.size(0) == b.size(0) && a.size(0) == c.size(0)) << "need one length";
}

// out = a + b (1-D float32 of any length and strides).
void add3(ffi::TensorView a, ffi::TensorView b, ffi::TensorView out) {
  check_f32(a, b, out);
  for (int64_t i = 0; i < a.size(0); ++i)
    f32_out(out)[i * out.stride(0)] = f32_in(a)[i * a.stride(0)] + f32_in(b)[i * b.stride(0)];
}

// out = a - b.
void sub3(ffi::TensorView a, ffi::TensorView b, ffi::TensorView out) {
  check_f32(a, b, out);
  for (int64_t i = 0; i < a.size(0); ++i)
    f32_out(out)[i * out.stride(0)] = f32_in(a)[i * a.stride(0)] - f32_in(b)[i * b.stride(0)];
}

// Writes two tensors: y = x + 1, z = x + 2.
void write_two(ffi::TensorView x, ffi::TensorView y, ffi::TensorView z) {
  check_f32(x, y, z);
  for (int64_t i = 0; i < x.size(0); ++i) {
    f32_out(y)[i * y.stride(0)] = f32_in(x)[i * x.stride(0)] + 1.0f;
    f32_out(z)[i * z.stride(0)] = f32_in(x)[i * x.stride(0)] + 2.0f;
  }
}

// y's bytes = x's bytes: contiguous tensors of any dtype and rank, of one byte size.
void copy_bytes(ffi::TensorView x, ffi::TensorView y) {
  auto nbytes = [](const ffi::TensorView& t) {
    int64_t n = (t.dtype().bits * t.dtype().lanes + 7) / 8;
    for (int i = 0; i < t.ndim(); ++i) n *= t.size(i);
    return n;
  };
  TVM_FFI_ICHECK(nbytes(x) == nbytes(y)) << "need the same byte size";
  std::memcpy(static_cast<char*>(y.data_ptr()) + y.byte_offset(),
              static_cast<const char*>(x.data_ptr()) + x.byte_offset(), nbytes(x));
}

// Calls the global function tvmfast_test.native_op_note on a worker thread (a Python function
// there needs the GIL) and joins it, then out = a + b.
void add_via_thread(ffi::TensorView a, ffi::TensorView b, ffi::TensorView out) {
  check_f32(a, b, out);
  ffi::Function note = ffi::Function::GetGlobalRequired("tvmfast_test.native_op_note");
  std::thread worker([&] { note(); });
  worker.join();
  add3(a, b, out);
}

// Spins for 250 ms (holding the GIL if it was called with it), then y = x + 1.
void busy_add_one(ffi::TensorView x, ffi::TensorView y) {
  check_f32(x, y, y);
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(250)) {
  }
  for (int64_t i = 0; i < x.size(0); ++i) f32_out(y)[i * y.stride(0)] = f32_in(x)[i * x.stride(0)] + 1.0f;
}
"""


# ---------------------------------------------------------------------------
# Shared helpers (test process and children)
# ---------------------------------------------------------------------------
def fresh_name(stem):
    """A new op name: an op's definition lives as long as the process."""
    return f"{NS}::{stem}{next(_IDS)}"


_PATHS: dict = {}
_LOADED: dict = {}


def _lib_path(key: str) -> str:
    """The library built by the `env` fixture: "cpp" (the C++ functions above) or "add" (the TVM add kernel,
    C = A + B of 128 float32)."""
    if not _PATHS:
        _PATHS.update(json.loads(os.environ.get(LIBS_ENV) or "{}"))
    assert key in _PATHS, f"{LIBS_ENV} names no {key!r} library (run through pytest)"
    return _PATHS[key]


def _cpp(fn: str):
    if "cpp" not in _LOADED:
        _LOADED["cpp"] = tvm_ffi.load_module(_lib_path("cpp"))
    return _LOADED["cpp"].get_function(fn)


def _add_kernel():
    return tvmfast.bind(_lib_path("add"), num_args=3)


def _native_expected() -> bool:
    return os.environ.get("TVMFAST_NATIVE_OP", "1") != "0"


def _check_native_state() -> None:
    """The process runs what it should: C kernels (the default), or Python kernels under TVMFAST_NATIVE_OP=0."""
    state = _core._native_op_state()
    if _native_expected():
        assert state.startswith("on"), f"native ops should be on here: {state}"
    else:
        assert state == "off (TVMFAST_NATIVE_OP=0)", state


def _randn(*shape, gen=None):
    return torch.randn(*shape, generator=gen)


def _nan(n: int):
    return torch.full((n,), float("nan"))


def _writer(fn, sleep: float = 0.0):
    """A bound tvm_ffi.convert'ed Python function: out = fn(a, b), after sleeping `sleep` seconds."""
    def write(a, b, out):
        if sleep:
            time.sleep(sleep)
        torch.from_dlpack(out).copy_(fn(torch.from_dlpack(a), torch.from_dlpack(b)))
    return tvmfast.bind(tvm_ffi.convert(write), num_args=3)


def _run_in_fork(body, timeout: float, what: str) -> None:
    """body() in a forked child (which leaves with os._exit); fails if it raised, or had not finished after
    `timeout` seconds (then it is killed)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code, message = 1, "no outcome"
        try:
            os.close(read_fd)
            body()
            code, message = 0, "ok"
        except BaseException as e:  # noqa: B036  (reported to the parent)
            message = f"{type(e).__name__}: {e}"
        finally:
            try:
                os.write(write_fd, message.encode("utf-8", "replace")[:60000])
            finally:
                os._exit(code)
    os.close(write_fd)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"HANG: the forked child had not finished after {timeout} s ({what})")
            time.sleep(0.02)
        message = os.read(read_fd, 65536).decode("utf-8", "replace")
    finally:
        os.close(read_fd)
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, f"the forked child ({what}) failed with exit code {code}: {message}"


def child_main(names: list[str]) -> None:
    isolation.run_cases(sys.modules[__name__], names)


def _run(cases, env, timeout: float, **overrides) -> None:
    """Cases in child processes (each list in one child, resumed after a crash or hang), all must pass."""
    env = dict(env, **overrides)
    isolation.assert_all_ok(isolation.run_isolated(MODULE, list(cases), env=env, timeout=timeout))


def _run_fresh(cases, env, timeout: float, **overrides) -> None:
    """Each case in a fresh process of its own (nothing ran before it), the processes side by side; all must
    pass."""
    env = dict(env, **overrides)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(cases)) as pool:
        for result in pool.map(lambda case: isolation.run_isolated(MODULE, [case], env=env, timeout=timeout), cases):
            results.update(result)
    isolation.assert_all_ok(results)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment for children: the C++ functions and the TVM add kernel built once, native ops on."""
    from tvm_ffi import cpp as ffi_cpp

    d = tmp_path_factory.mktemp("native_op_reliability_libs")
    add_path = str(d / "add.so")
    kernels.build_add(128).export_library(add_path)
    cpp_path = ffi_cpp.build_inline(CPP_NAME, cpp_sources=CPP_SOURCE, functions=CPP_FUNCTIONS,
                                    build_directory=str(d / "cpp"))
    _PATHS.update({"add": add_path, "cpp": cpp_path})
    e = dict(os.environ)
    e.pop("TVMFAST_NATIVE_OP", None)
    e[LIBS_ENV] = json.dumps(_PATHS)
    return e


@pytest.fixture(scope="module")
def native(env):
    """Native ops are on wherever torch exports the stable C ABI (torch >= 2.9 does); skipped elsewhere."""
    state = _core._native_op_state()
    if not state.startswith("on"):
        pytest.skip(f"native torch ops are off here: {state}")
    return state


# ---------------------------------------------------------------------------
# 1. An op that neither writes nor returns: refused at registration (torch.compile drops such a call)
# ---------------------------------------------------------------------------
def test_op_that_neither_writes_nor_returns_is_refused(native, gen):
    """as_torch_op without mutates_args and without returns= raises ValueError naming both (torch.compile
    would treat such an op as pure and without outputs, and drop its call); and a function that returns a
    tensor from an op registered without returns= raises RuntimeError naming returns=, eager and compiled
    (aot_eager, inductor): its result is never silently dropped."""
    add = _add_kernel()
    with pytest.raises(ValueError) as info:
        add.as_torch_op(fresh_name("add"))
    assert "mutates_args" in str(info.value) and "returns=" in str(info.value), str(info.value)
    with pytest.raises(ValueError) as info:
        add.as_torch_op(fresh_name("add"), mutates_args=())
    assert "mutates_args" in str(info.value) and "returns=" in str(info.value), str(info.value)
    # Writing, or returning, is enough.
    op = add.as_torch_op(fresh_name("add"), mutates_args=(2,))
    a, b, out = _randn(128, gen=gen), _randn(128, gen=gen), _nan(128)
    op(a, b, out)
    torch.testing.assert_close(out, a + b)
    plus_one = tvmfast.bind(tvm_ffi.convert(lambda x: torch.from_dlpack(x) + 1), num_args=1)
    returning = plus_one.as_torch_op(fresh_name("plus_one"), returns=lambda x: x.new_empty(x.shape))
    torch.testing.assert_close(returning(a), a + 1)

    echo = tvmfast.bind(tvm_ffi.convert(lambda x, y: x), num_args=2)  # returns its first argument
    op = echo.as_torch_op(fresh_name("returns_x"), mutates_args=(1,))
    with pytest.raises(RuntimeError, match="returns="):
        op(a, torch.empty(128))

    def step(x):
        y = torch.empty_like(x)
        op(x, y)
        return y * 2

    for backend in ("aot_eager", "inductor"):
        compiled = torch.compile(step, backend=backend, fullgraph=True)
        with pytest.raises(RuntimeError, match="returns="):
            compiled(a)
            pytest.fail(f"torch.compile(backend={backend!r}) dropped the function's result silently")


# ---------------------------------------------------------------------------
# 2. A refused call bumps no version counter
# ---------------------------------------------------------------------------
def _case_refused_write_bumps_nothing(gen=None):
    _check_native_state()
    op = tvmfast.bind(_cpp("write_two"), num_args=3).as_torch_op(fresh_name("write_two"), mutates_args=(1, 2))
    with torch.inference_mode():
        inference = torch.zeros(64)
    x = _randn(64, gen=gen)
    # Each written position holds the inference tensor in turn; the plain tensor written beside it keeps its version.
    for args, plain in (((x, _nan(64), inference), 1), ((x, inference, _nan(64)), 2)):
        version = args[plain]._version
        with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
            op(*args)
        assert args[plain]._version == version, (
            f"a refused call bumped argument #{plain}'s version counter ({version} -> {args[plain]._version})")
        assert torch.isnan(args[plain]).all() and torch.equal(inference, torch.zeros(64)), "a refused call wrote"

    # A tensor saved for backward, named as the refused call's written argument #1: backward still works.
    w = _randn(64, gen=gen).requires_grad_()
    a = _randn(64, gen=gen)
    loss = (w * a).sum()  # saves a for w's gradient
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        op(x, a, inference)
    loss.backward()
    torch.testing.assert_close(w.grad, a)

    # A call that is not refused writes both and bumps both.
    y, z = _nan(64), _nan(64)
    op(x, y, z)
    torch.testing.assert_close(y, x + 1)
    torch.testing.assert_close(z, x + 2)
    assert (y._version, z._version) == (1, 1)
    _check_native_state()


def test_refused_call_bumps_no_version(native, env, gen):
    """An op call refused because it writes an inference tensor outside inference mode changes nothing: the
    other tensor it writes keeps its version counter, so a tensor saved for backward and passed as that
    argument still lets backward run (and give the right gradient).  C kernel here, Python kernel in a child
    under TVMFAST_NATIVE_OP=0."""
    _case_refused_write_bumps_nothing(gen)
    _run(["_case_refused_write_bumps_nothing"], env, 120, TVMFAST_NATIVE_OP="0")


# ---------------------------------------------------------------------------
# 3. The Python kernel frees the tensors it is given
# ---------------------------------------------------------------------------
class _Wrapped:
    """Stands in for a CuTe DSL compiled kernel: an object with its own call that wraps a tvm_ffi.Function
    (tvm_ffi's __tvm_ffi_object__ protocol); its op always takes the Python kernel."""

    def __init__(self, fn):
        self._fn = fn

    def __tvm_ffi_object__(self):
        return self._fn

    def __call__(self, *args):
        return self._fn(*args)


MIB16 = 4 << 20  # float32 elements in 16 MiB
_LEAK_OPS: dict = {}


def _leak_ops() -> dict:
    """copy_bytes(x, y) (y's bytes = x's) as ops: bound plainly, with alignment=64, and through a wrapper."""
    if not _LEAK_OPS:
        copy = _cpp("copy_bytes")
        _LEAK_OPS["plain"] = tvmfast.bind(copy, num_args=2).as_torch_op(fresh_name("copy"), mutates_args=(1,))
        _LEAK_OPS["aligned64"] = tvmfast.bind(copy, num_args=2, alignment=64).as_torch_op(
            fresh_name("copy64"), mutates_args=(1,))
        _LEAK_OPS["wrapper"] = tvmfast.bind(_Wrapped(copy), num_args=2).as_torch_op(
            fresh_name("copy_wrapped"), mutates_args=(1,))
    return _LEAK_OPS


def _leak_inputs(kind: str, random: bool):
    """({name: tensor} the call is given or made from, x, y, the expected y, the op) for one call of `kind`
    (x random, or for the RSS loops merely written: every page of it is resident either way)."""
    ops = _leak_ops()
    randn = torch.randn if random else torch.ones
    if kind in ("plain", "requires_grad", "wrapper"):
        x = randn(MIB16, requires_grad=kind == "requires_grad")
        y = torch.empty(MIB16)
        return {"x": x, "y": y}, x, y, x.detach(), ops["wrapper" if kind == "wrapper" else "plain"]
    if kind == "uint16":
        x = (torch.randint(0, 1 << 16, (2 * MIB16,), dtype=torch.int32).to(torch.uint16) if random
             else torch.ones(2 * MIB16, dtype=torch.uint16))
        y = torch.empty(2 * MIB16, dtype=torch.uint16)
        return {"x": x, "y": y}, x, y, x, ops["plain"]
    if kind == "six_dims":
        x = randn(4, 4, 4, 4, 4, MIB16 // 1024)
        y = torch.empty(x.shape)
        return {"x": x, "y": y}, x, y, x, ops["plain"]
    if kind == "misaligned":
        base = randn(MIB16 + 1)
        x = base[1:]  # 4 bytes past a 64-byte boundary
        assert x.data_ptr() % 64 != 0
        y = torch.empty(MIB16)
        return {"base": base, "x": x, "y": y}, x, y, x, ops["aligned64"]
    if kind == "copy_on_write":
        source = randn(MIB16)
        x = torch._lazy_clone(source)
        is_cow = getattr(torch._C, "_is_cow_tensor", None)
        assert is_cow is None or is_cow(x)
        y = torch.empty(MIB16)
        return {"source": source, "x": x, "y": y}, x, y, source, ops["plain"]
    raise AssertionError(kind)


def _leak_call(kind: str, check: bool):
    """One op call of `kind` under no_grad on fresh 16 MiB tensors; weak references to them afterwards."""
    tensors, x, y, expected, op = _leak_inputs(kind, random=check)
    with torch.no_grad():
        op(x, y)
    if check:
        assert torch.equal(y, expected), f"{kind}: wrong result"
    return [(name, weakref.ref(t)) for name, t in tensors.items()]


def _primer(kind: str) -> str:
    """A call known to take the Python kernel for another reason than `kind`'s; the reason it leaves."""
    ops = _leak_ops()
    with torch.no_grad():
        if kind == "wrapper":
            ops["plain"](torch.randn(4, requires_grad=True), torch.empty(4))
        else:
            ops["wrapper"](torch.randn(4), torch.empty(4))
    reason = _core._native_op_last_fallback()
    assert reason != "none", "the primer call did not take the Python kernel"
    return reason


def _rss_growth(kind: str, calls: int = 20) -> int:
    import psutil

    process = psutil.Process()
    for _ in range(5):  # warm-up: first-call caches, allocator thresholds
        _leak_call(kind, check=False)
    gc.collect()
    before = process.memory_info().rss
    for _ in range(calls):
        _leak_call(kind, check=False)
    gc.collect()
    return process.memory_info().rss - before


def _case_op_call_frees_its_tensors(kind: str):
    _check_native_state()
    _leak_ops()  # registered before anything is profiled
    if kind == "plain":
        refs = []
        frames = tvmfast_frames(lambda: refs.extend(_leak_call(kind, check=True)))
        assert frames == [], f"plain tensors should take the C kernel: {frames[:3]}"
    else:
        primed = _primer(kind)
        refs = _leak_call(kind, check=True)
        reason = _core._native_op_last_fallback()
        assert reason not in ("none", primed), (
            f"{kind}: the call should take the Python kernel (last fallback: {reason!r}, before it: {primed!r})")
    gc.collect()
    alive = [name for name, ref in refs if ref() is not None]
    assert not alive, f"{kind}: tensor(s) {alive} passed to the op are still alive after the call"
    grown = _rss_growth(kind)
    assert grown < 100 << 20, (f"{kind}: RSS grew by {grown >> 20} MiB over 20 calls with fresh 16 MiB tensors "
                               f"(leaking every call's tensors would be {20 * 32} MiB or more)")


def _case_refcounts_unchanged():
    _check_native_state()
    ops = _leak_ops()
    for what, op, requires_grad in (("C kernel", ops["plain"], False), ("Python kernel", ops["plain"], True),
                                    ("Python kernel (wrapper)", ops["wrapper"], False)):
        x, y = torch.randn(1024, requires_grad=requires_grad), torch.empty(1024)
        before = sys.getrefcount(x), sys.getrefcount(y)
        with torch.no_grad():
            for _ in range(200):
                op(x, y)
        assert torch.equal(y, x.detach())
        after = sys.getrefcount(x), sys.getrefcount(y)
        assert after == before, f"{what}: refcounts of (x, y) went from {before} to {after} over 200 calls"


LEAK_KINDS = ["plain", "requires_grad", "uint16", "six_dims", "misaligned", "copy_on_write", "wrapper"]


def test_python_kernel_frees_its_tensors(native, env):
    """Every tensor given to an op call is freed once the caller drops it, whichever kernel ran: the C kernel
    (plain tensors) and the Python kernel for each reason a call takes it (a tensor that requires grad, under
    no_grad; a uint16 tensor; over 5 dims; misaligned data for a function bound with alignment=64; a
    copy-on-write clone; an op bound from a wrapper object).  Checked by weak references, by RSS over 20
    calls with fresh 16 MiB tensors, and by refcounts over many calls."""
    cases = [f"_case_op_call_frees_its_tensors:{kind}" for kind in LEAK_KINDS] + ["_case_refcounts_unchanged"]
    # A fixed mmap threshold: glibc returns every freed 16 MiB block at once (its adaptive threshold would
    # otherwise keep up to ~128 MiB of freed blocks resident after the first calls, leak or not).
    _run(cases, env, 240, MALLOC_MMAP_THRESHOLD_="1048576")


# ---------------------------------------------------------------------------
# 4. AOTInductor: the op's function calls Python from a worker thread
# ---------------------------------------------------------------------------
def _case_aoti_package_calls_python_on_a_worker_thread():
    folder, name = json.loads(os.environ[AOTI_ENV])
    calls = []
    tvm_ffi.register_global_func(NOTE, lambda: calls.append(threading.get_ident()), override=True)
    f = tvmfast.bind(_lib_path("cpp"), "add_via_thread", num_args=3, alignment=1)
    f.as_torch_op(name, mutates_args=(2,))
    data = torch.load(os.path.join(folder, "data.pt"))
    model = torch._inductor.aoti_load_package(os.path.join(folder, "model.pt2"))
    got = model(data["x"])
    assert torch.equal(got, data["expected"]), "the package computed a wrong result"
    assert len(calls) == 1 and calls[0] != threading.get_ident(), calls
    print("last fallback:", _core._native_op_last_fallback(), flush=True)
    _check_native_state()


@pytest.mark.slow
def test_aoti_package_whose_function_calls_python_from_a_thread(native, env, tmp_path, gen):
    """An AOTInductor package calling an op whose C++ function runs a Python function on a std::thread and
    joins it: a fresh process runs the package to the right result (the op's kernel must not hold the GIL
    while the function waits for the thread)."""
    calls = []
    tvm_ffi.register_global_func(NOTE, lambda: calls.append(1), override=True)
    name = fresh_name("aoti_thread")
    f = tvmfast.bind(_lib_path("cpp"), "add_via_thread", num_args=3, alignment=1)
    op = f.as_torch_op(name, mutates_args=(2,))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", _randn(128, gen=gen))

        def forward(self, x):
            out = torch.empty_like(x)
            op(x, self.w, out)
            return out * 2

    model = Model()
    x = _randn(128, gen=gen)
    torch.testing.assert_close(model(x), (x + model.w) * 2)
    assert calls == [1]
    torch._inductor.aoti_compile_and_package(torch.export.export(model, (x,)),
                                             package_path=str(tmp_path / "model.pt2"))
    torch.save({"x": x, "expected": model(x)}, tmp_path / "data.pt")
    _run_fresh(["_case_aoti_package_calls_python_on_a_worker_thread"], env, 90,
               **{AOTI_ENV: json.dumps([str(tmp_path), name])})


# ---------------------------------------------------------------------------
# 5-7. Registering an op again: from inside its call, under concurrent calls, in a forked child
# ---------------------------------------------------------------------------
def _case_reregister_from_inside_the_call():
    _check_native_state()
    name = fresh_name("self_register")
    calls = []
    holder = {}

    def double(x, y):
        calls.append(1)
        if len(calls) == 1:
            holder["bound"].as_torch_op(name, mutates_args=(1,))  # the same op, again, from inside its call
        torch.from_dlpack(y).copy_(torch.from_dlpack(x) * 2)

    bound = holder["bound"] = tvmfast.bind(tvm_ffi.convert(double), num_args=2)
    op = bound.as_torch_op(name, mutates_args=(1,))
    for _ in range(3):
        x, y = torch.randn(64), _nan(64)
        op(x, y)
        torch.testing.assert_close(y, x * 2)
    assert len(calls) == 3


def test_reregistration_from_inside_its_own_call(native, env):
    """An op whose function registers the op again (same name, same mutates_args) from inside its first call:
    that call returns, with the right result, and the op keeps computing right afterwards."""
    _run(["_case_reregister_from_inside_the_call"], env, 60)


def _case_reregister_while_threads_call(param: str):
    """Threads call the op in a loop (a + b) until told to stop; the op is registered again (a - b)."""
    _check_native_state()
    if param == "cpp":
        old, new = tvmfast.bind(_cpp("add3"), num_args=3), tvmfast.bind(_cpp("sub3"), num_args=3)
    else:  # Python functions that take a while: some call is nearly always inside the op
        old, new = _writer(torch.add, sleep=0.003), _writer(torch.sub, sleep=0.003)
    name = fresh_name("swap_" + param)
    op = old.as_torch_op(name, mutates_args=(2,))
    stop, swapped = threading.Event(), threading.Event()
    n_threads = 3
    before = [0] * n_threads
    after = [0] * n_threads
    errors = []

    def worker(k):
        a, b, out = torch.randn(256), torch.randn(256), torch.empty(256)
        try:
            while not stop.is_set():
                started_after_swap = swapped.is_set()
                out.fill_(float("nan"))
                op(a, b, out)
                if torch.equal(out, a - b):
                    pass
                elif torch.equal(out, a + b):
                    if started_after_swap:
                        errors.append(f"thread {k}: a call made after the re-registration ran the old function")
                        return
                else:
                    errors.append(f"thread {k}: wrong result")
                    return
                (after if started_after_swap else before)[k] += 1
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n_threads)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while min(before) < 5 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert min(before) >= 5, f"the threads did not get going: {before} {errors}"
        start = time.monotonic()
        assert new.as_torch_op(name, mutates_args=(2,)) is op
        took = time.monotonic() - start
        swapped.set()
        assert took < 10, f"the re-registration took {took:.1f} s while threads called the op"
        deadline = time.monotonic() + 30
        while min(after) < 5 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads), "a calling thread did not stop"
    assert errors == [], errors[:3]
    assert min(after) >= 5, f"calls after the re-registration: {after}"
    a, b, out = torch.randn(256), torch.randn(256), _nan(256)
    op(a, b, out)
    torch.testing.assert_close(out, a - b)


def test_reregistration_while_threads_keep_calling(native, env):
    """Registering an op again while 3 threads call it in a loop (until told to stop) returns promptly (under
    10 s); every call's result is right (the old function's or the new one's), and every call made after the
    re-registration returned runs the new function.  A fast C++ function, and Python functions that take a
    while (some call is nearly always in flight)."""
    _run(["_case_reregister_while_threads_call:cpp", "_case_reregister_while_threads_call:callback"], env, 90)


def _case_fork_while_a_thread_is_inside_the_op():
    _check_native_state()
    torch.set_num_threads(1)  # GNU OpenMP's thread team does not survive fork
    name = fresh_name("fork_inside")
    entered, release = threading.Event(), threading.Event()

    def blocking(x, y):
        entered.set()
        release.wait()
        torch.from_dlpack(y).copy_(torch.from_dlpack(x) + 1)

    op = tvmfast.bind(tvm_ffi.convert(blocking), num_args=2).as_torch_op(name, mutates_args=(1,))
    x, y = torch.randn(64), _nan(64)
    thread = threading.Thread(target=op, args=(x, y), daemon=True)
    thread.start()
    try:
        assert entered.wait(30), "the op's function was not entered"

        def plus_two(a, b):
            torch.from_dlpack(b).copy_(torch.from_dlpack(a) + 2)

        def child():
            bound = tvmfast.bind(tvm_ffi.convert(plus_two), num_args=2)
            assert bound.as_torch_op(name, mutates_args=(1,)) is op
            a, b = torch.randn(64), _nan(64)
            op(a, b)
            assert torch.equal(b, a + 2), "wrong result in the forked child"

        _run_in_fork(child, 30, "registering the op again, then calling it")
    finally:
        release.set()
        thread.join(30)
    assert not thread.is_alive()
    torch.testing.assert_close(y, x + 1)


def test_fork_while_another_thread_is_inside_the_op(native, env):
    """A process forks while another thread is inside an op call (its function blocks until released): in
    the child, registering that op again returns, and a call gives the right result (the child is waited for
    30 s); the parent's call completes right once released."""
    _run(["_case_fork_while_a_thread_is_inside_the_op"], env, 90)


# ---------------------------------------------------------------------------
# 8. The first tvmfast call of a process under a torch function or dispatch mode
# ---------------------------------------------------------------------------
def _mode_class(kind: str, f, a, b, out, visits: list):
    """A mode whose handler calls the tvmfast-bound f(a, b, out) before delegating."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    class FunctionMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            f(a, b, out)
            visits.append(func)
            return func(*args, **(kwargs or {}))

    class DispatchMode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            f(a, b, out)
            visits.append(func)
            return func(*args, **(kwargs or {}))

    return {"function": FunctionMode, "dispatch": DispatchMode}[kind]


def _case_first_call_under_a_mode(param: str):
    """In a fresh process (no tvmfast call with a torch tensor before this case)."""
    kind, what = param.split("/")
    f = tvmfast.bind(_cpp("add3"), num_args=3)
    a, b, out = torch.randn(64), torch.randn(64), _nan(64)
    x, y, z = torch.randn(64), torch.randn(64), _nan(64)
    visits: list = []
    mode = _mode_class(kind, f, a, b, out, visits)
    if what == "torch_call":
        # Two modes: torch takes the one whose handler runs off the stack, not the other one.
        with mode(), mode():
            got = torch.add(x, y)
        assert visits, "the mode's handler did not run"
        torch.testing.assert_close(got, x + y)
    elif what == "tvmfast_call":
        with mode():
            f(x, y, z)
        torch.testing.assert_close(z, x + y)
    elif what == "as_torch_op":
        with mode():
            op = f.as_torch_op(fresh_name("add_under_mode"), mutates_args=(2,))
            op(x, y, z)
        torch.testing.assert_close(z, x + y)
        state = _core._native_op_state()
        assert state.startswith("on"), f"native ops after the first as_torch_op under a {kind} mode: {state}"
        x2, y2, z2 = torch.randn(64), torch.randn(64), _nan(64)
        op(x2, y2, z2)
        torch.testing.assert_close(z2, x2 + y2)
    else:
        raise AssertionError(what)
    if visits:
        torch.testing.assert_close(out, a + b)


@pytest.mark.parametrize("kind", ["function", "dispatch"])
def test_first_call_under_a_torch_mode(native, env, kind):
    """In a fresh process, under a torch.overrides.TorchFunctionMode (or a TorchDispatchMode) whose handler
    calls a tvmfast-bound function on torch tensors before delegating: a torch call (under two such modes),
    a tvmfast call, and the first as_torch_op (native ops then on, the op computing right) all complete with
    the right results; each in a fresh process, under a timeout."""
    cases = [f"_case_first_call_under_a_mode:{kind}/{what}" for what in ("torch_call", "tvmfast_call", "as_torch_op")]
    _run_fresh(cases, env, 60)


# ---------------------------------------------------------------------------
# 9. Fork during the one-time torch set-up
# ---------------------------------------------------------------------------
def _case_fork_during_torch_setup():
    """In a fresh process: a thread makes the process's first tvmfast call with torch tensors; the main thread
    forks while that thread is inside the one-time set-up."""
    from tvmfast import _torch

    torch.set_num_threads(1)  # GNU OpenMP's thread team does not survive fork
    inside = threading.Event()
    original = _torch.find_to_dlpack_nonowning

    def slow(*args):
        inside.set()
        time.sleep(0.5)
        return original(*args)

    _torch.find_to_dlpack_nonowning = slow
    f = tvmfast.bind(_cpp("add3"), num_args=3)
    x, y, out = torch.randn(64), torch.randn(64), _nan(64)
    thread = threading.Thread(target=f, args=(x, y, out), daemon=True)
    thread.start()
    assert inside.wait(30), "the set-up did not call tvmfast._torch.find_to_dlpack_nonowning"

    def child():
        a, b, c = torch.randn(64), torch.randn(64), _nan(64)
        f(a, b, c)
        assert torch.equal(c, a + b), "wrong result in the forked child"
        state = _core._torch_direct_export_state()
        assert state != "off (no torch tensor seen yet)", state
        print("child's direct export state:", state, flush=True)

    _run_in_fork(child, 30, "a tvmfast call with torch tensors")
    thread.join(30)
    assert not thread.is_alive()
    torch.testing.assert_close(out, x + y)


def test_fork_during_the_one_time_torch_setup(native, env):
    """A process forks while another thread is inside tvmfast's one-time torch set-up (its first call with
    torch tensors): in the child, a tvmfast call with torch tensors completes with the right result (waited
    for 30 s) and the direct-export state is reported; the parent's call completes right too."""
    _run_fresh(["_case_fork_during_torch_setup"], env, 90)


# ---------------------------------------------------------------------------
# 10. More than 512 op names
# ---------------------------------------------------------------------------
def _case_many_ops():
    _check_native_state()
    add = _add_kernel()
    names = [fresh_name("many") for _ in range(600)]
    ops, errors = [], []
    for name in names:
        try:
            ops.append(add.as_torch_op(name, mutates_args=(2,)))
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(f"{name}: {type(e).__name__}: {e}")
            ops.append(None)
    assert errors == [], f"{len(errors)} of 600 registrations failed, the first: {errors[:2]}"

    def check(i, expected):
        a, b, out = torch.randn(128), torch.randn(128), _nan(128)
        ops[i](a, b, out)
        torch.testing.assert_close(out, expected(a, b), msg=lambda m: f"op #{i} ({names[i]}): {m}")

    for i in range(600):
        check(i, torch.add)
    sub = tvmfast.bind(_cpp("sub3"), num_args=3)
    for i in (599, 3):  # past the C kernels' slots, and within them
        assert sub.as_torch_op(names[i], mutates_args=(2,)) is ops[i]
        check(i, torch.sub)
    assert add.as_torch_op(names[599], mutates_args=(2,)) is ops[599]
    check(599, torch.add)
    for i in range(600):
        check(i, torch.sub if i == 3 else torch.add)
    _check_native_state()


def test_more_than_512_ops(native, env):
    """600 distinct ops (the add kernel, each under its own name) all register and compute a + b, also past
    the C kernels' slots; registering one of them again (another function, then the add kernel) works."""
    _run(["_case_many_ops"], env, 120)


# ---------------------------------------------------------------------------
# 11. The first as_torch_op of the process inside torch.inference_mode()
# ---------------------------------------------------------------------------
def _case_first_registration_in_inference_mode():
    f = tvmfast.bind(_cpp("add3"), num_args=3)
    with torch.inference_mode():
        op = f.as_torch_op(fresh_name("add_inference"), mutates_args=(2,))
        x, y, z = torch.randn(64), torch.randn(64), _nan(64)
        op(x, y, z)
        torch.testing.assert_close(z, x + y)
    state = _core._native_op_state()
    assert state.startswith("on"), f"native ops after the first as_torch_op inside inference_mode: {state}"
    a, b, out = torch.randn(64), torch.randn(64), _nan(64)
    frames = tvmfast_frames(lambda: op(a, b, out))
    torch.testing.assert_close(out, a + b)
    assert frames == [], f"a plain call outside inference mode should run in C: {frames[:3]}"
    assert _core._native_op_last_fallback() == "none"


def test_first_registration_inside_inference_mode(native, env):
    """The first as_torch_op of a process made inside torch.inference_mode(): native ops are on afterwards, and
    a plain call outside inference mode runs the C kernel (no tvmfast Python frame) with the right result."""
    _run_fresh(["_case_first_registration_in_inference_mode"], env, 60)


# ---------------------------------------------------------------------------
# 12. release_gil changed after as_torch_op
# ---------------------------------------------------------------------------
def _progress_during(call) -> float:
    """How far a Python thread counting in a loop gets during call(), as a fraction of what it gets in the
    same time while this thread sleeps: near 0 when call() holds the GIL, far above it when it releases it."""
    count = [0]
    stop, started = threading.Event(), threading.Event()

    def counter():
        started.set()
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=counter, daemon=True)
    thread.start()
    started.wait()
    try:
        time.sleep(0.05)
        c0, t0 = count[0], time.perf_counter()
        call()
        c1, took = count[0], time.perf_counter() - t0
        c2 = count[0]
        time.sleep(took)
        c3 = count[0]
    finally:
        stop.set()
        thread.join()
    return (c1 - c0) / max(c3 - c2, 1)


def _case_release_gil_set_after_registration():
    _check_native_state()
    x = torch.randn(64)
    for initial, later in ((True, False), (False, True)):
        f = tvmfast.bind(_cpp("busy_add_one"), num_args=2, release_gil=initial)
        op = f.as_torch_op(fresh_name("busy"), mutates_args=(1,))
        f.release_gil = later
        progress = []
        for _ in range(3):  # the best of 3 (other processes share the cores)
            y = _nan(64)
            progress.append(_progress_during(lambda y=y, op=op: op(x, y)))
            torch.testing.assert_close(y, x + 1)
            if (progress[-1] > 0.25) if later else (progress[-1] < 0.15):
                break
        else:
            held = "released" if later else "held"
            raise AssertionError(
                f"release_gil={initial} at as_torch_op, then f.release_gil = {later}: the GIL should be {held} "
                f"during the op's call; another thread's progress meanwhile was {progress} of its free rate")
    _check_native_state()


def test_release_gil_set_after_registration_is_honoured(native, env):
    """f.release_gil changed after f.as_torch_op(...) holds for the op's calls: False makes the function run
    with the GIL held (another Python thread barely progresses during a 250 ms call), True lets other threads
    run meanwhile.  The C kernel (native ops on) and the Python kernel (TVMFAST_NATIVE_OP=0) alike."""
    _run(["_case_release_gil_set_after_registration"], env, 60)
    _run(["_case_release_gil_set_after_registration"], env, 60, TVMFAST_NATIVE_OP="0")


# ---------------------------------------------------------------------------
# 13. More than 26 written tensors
# ---------------------------------------------------------------------------
def test_more_than_26_written_tensors(native, gen):
    """An op writing 30 tensors (mutates_args=tuple(range(30)) on a function of 31 tensor arguments) registers
    and works: each written tensor gets its value and one version-counter bump; the input is untouched."""
    n_out = 30

    def write_all(*args):
        x = torch.from_dlpack(args[n_out])
        for i in range(n_out):
            torch.from_dlpack(args[i]).copy_(x + i)

    f = tvmfast.bind(tvm_ffi.convert(write_all), num_args=n_out + 1)
    op = f.as_torch_op(fresh_name("write_30"), mutates_args=tuple(range(n_out)))
    x = _randn(32, gen=gen)
    outs = [_nan(32) for _ in range(n_out)]
    op(*outs, x)
    for i, out in enumerate(outs):
        torch.testing.assert_close(out, x + i, msg=lambda m, i=i: f"written tensor #{i}: {m}")
        assert out._version == 1, f"written tensor #{i}: version {out._version}"
    assert x._version == 0
