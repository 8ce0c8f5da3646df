"""Child processes for the tests: a case that can crash or hang runs in one, so a segfault, an
abort or a hang fails that case, not the suite.

* :func:`run_isolated` runs a test module's ``_case_*`` functions by name in child processes
  (``python -c "import <module>; <module>.child_main(cases)"``; the module's ``child_main`` calls
  :func:`run_cases`), a marker line per case; after a crash the next child resumes with the
  following case, so one crash does not hide the others.  :func:`assert_all_ok` checks the result.
* :func:`run_forked` runs one callable in a forked child (a table row: a crash or a hang names the
  call that was running).
* :func:`child_env`, :func:`kernel`, :func:`cpp`: the test kernels and C++ functions, built once in
  the test process and loaded by the children (loading a library is much cheaper than building).
  :class:`CppLibrary`: more C++ test functions built the same way (``WORKER_CPP``: functions that
  take any address, call back from a worker thread or keep a tensor; no apache-tvm needed).
* Shared helpers: :func:`outcome`, :func:`as_numpy`.
"""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest
import tvm_ffi

from support.cpp_sources import WORKER_FUNCTIONS, WORKER_SOURCE

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: `import support`
ROOT = os.path.dirname(TESTS_DIR)
LIBS_ENV = "TVMFAST_TEST_CHILD_LIBS"
MARK = "@@tvmfast-case"
N = 128  # the static add kernel's length

# ---------------------------------------------------------------------------
# Kernels and C++ functions, built once in the test process and loaded by children
# ---------------------------------------------------------------------------

CPP_NAME = "tvmfast_test_callees"
CPP_FUNCTIONS = ["get_count", "bump_then_add_one", "add_one_owned"]
CPP_SOURCE = r"""
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <atomic>

static std::atomic<int64_t> calls{0};

int64_t get_count() { return calls.load(); }

template <typename X, typename Y>
static void check_f32_pair(const X& x, const Y& y) {
  DLDataType f32{kDLFloat, 32, 1};
  TVM_FFI_ICHECK(x.ndim() == 1 && y.ndim() == 1 && x.size(0) == y.size(0)) << "need two 1-D tensors of one length";
  TVM_FFI_ICHECK(x.dtype() == f32 && y.dtype() == f32) << "need float32";
  TVM_FFI_ICHECK(x.stride(0) == 1 && y.stride(0) == 1) << "need contiguous tensors";
}

// A side effect first (count the call), then a cast that needs an owned tensor:
// a borrowed DLTensor* fails it with a TypeError mentioning DLTensor*.
void bump_then_add_one(tvm::ffi::Any x, tvm::ffi::TensorView y) {
  calls++;
  tvm::ffi::Tensor t = x.cast<tvm::ffi::Tensor>();
  check_f32_pair(t, y);
  const float* src = static_cast<const float*>(t.data_ptr());
  float* dst = static_cast<float*>(y.data_ptr());
  for (int64_t i = 0; i < t.size(0); ++i) dst[i] = src[i] + 1.0f;
}

// Owned tensors in, y = x + 1.
void add_one_owned(tvm::ffi::Tensor x, tvm::ffi::Tensor y) {
  check_f32_pair(x, y);
  const float* src = static_cast<const float*>(x.data_ptr());
  float* dst = static_cast<float*>(y.data_ptr());
  for (int64_t i = 0; i < x.size(0); ++i) dst[i] = src[i] + 1.0f;
}
"""


def _kernel_builders():
    from support import tvm_kernels  # noqa: PLC0415  (needs apache-tvm: only where a kernel is built)

    return {
        "add": lambda: tvm_kernels.build_add(N),
        "add_dyn": lambda: tvm_kernels.build_add_dynamic(),
        "scale": lambda: tvm_kernels.build_scale(64),
    }


_ENV: dict = {}


def child_env(tmp_path_factory) -> dict:
    """The environment for children: the test kernels exported as libraries (loading one is
    much cheaper than building it) and the C++ test functions compiled once."""
    if "env" not in _ENV:
        from tvm_ffi import cpp as ffi_cpp  # noqa: PLC0415

        d = tmp_path_factory.mktemp("child_libs")
        libs = {}
        for name, build in _kernel_builders().items():
            path = str(d / f"{name}.so")
            build().export_library(path)
            libs[name] = path
        libs["cpp"] = ffi_cpp.build_inline(
            CPP_NAME, cpp_sources=CPP_SOURCE, functions=CPP_FUNCTIONS, build_directory=str(d / "cpp"))
        env = dict(os.environ)
        env[LIBS_ENV] = json.dumps(libs)
        _ENV["env"] = env
    return _ENV["env"]


_LOADED: dict = {}


def kernel(name: str):
    """A test kernel's runtime module (``"add"``: C = A + B of 128 float32, ``"add_dyn"``:
    any length, ``"scale"``: B = A * alpha + shift of 64) or the C++ module (``"cpp"``)."""
    if name not in _LOADED:
        libs = json.loads(os.environ.get(LIBS_ENV) or "{}")
        if name in libs:
            _LOADED[name] = tvm_ffi.load_module(libs[name])
        elif name == "cpp":
            from tvm_ffi import cpp as ffi_cpp  # noqa: PLC0415

            _LOADED[name] = ffi_cpp.load_inline(CPP_NAME, cpp_sources=CPP_SOURCE, functions=CPP_FUNCTIONS)
        else:
            _LOADED[name] = _kernel_builders()[name]()
    return _LOADED[name]


def cpp(fn: str):
    return kernel("cpp").get_function(fn)


class CppLibrary:
    """C++ test functions (``tvm_ffi.cpp``) for cases that run in children: built once in the test
    process (:meth:`env`: the children's environment, naming the library in ``$<env_var>``) and
    loaded by each child; built where they are called (:meth:`function`) when ``$<env_var>`` is
    unset, as in a case run in-process."""

    def __init__(self, name: str, source: str, functions: list[str], env_var: str):
        self.name, self.source, self.functions, self.env_var = name, source, functions, env_var
        self._built: str | None = None
        self._module = None

    def env(self, tmp_path_factory) -> dict:
        """os.environ and the library, built once per test process."""
        if self._built is None:
            from tvm_ffi import cpp as ffi_cpp  # noqa: PLC0415

            d = tmp_path_factory.mktemp(self.name)
            self._built = ffi_cpp.build_inline(self.name, cpp_sources=self.source, functions=self.functions,
                                               build_directory=str(d / "cpp"))
        env = dict(os.environ)
        env[self.env_var] = json.dumps({"cpp": self._built})
        return env

    def function(self, fn: str):
        """A function of the library (built by :meth:`env`, or here when run in-process)."""
        if self._module is None:
            libs = json.loads(os.environ.get(self.env_var) or "{}")
            if "cpp" in libs:
                self._module = tvm_ffi.load_module(libs["cpp"])
            else:
                from tvm_ffi import cpp as ffi_cpp  # noqa: PLC0415

                self._module = ffi_cpp.load_inline(self.name, cpp_sources=self.source, functions=self.functions)
        return self._module.get_function(fn)


# Functions that take any address, call back from a worker thread, or keep a tensor
# (support/cpp_sources.py): a C++ compiler is all they need.
WORKER_CPP = CppLibrary("tvmfast_test_worker_callees", WORKER_SOURCE, WORKER_FUNCTIONS, "TVMFAST_TEST_WORKER_LIBS")


# ---------------------------------------------------------------------------
# The child runner
# ---------------------------------------------------------------------------


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def run_isolated(module: str, cases: list[str], *, env: dict | None = None, timeout: float = 300) -> dict:
    """Run ``module``'s case functions (``"name"`` or ``"name:param"``) in child processes.

    Returns {case: "ok" | what went wrong}.  A case that crashes the child (or hangs past
    ``timeout``) is reported as such and the remaining cases run in a new child.
    """
    results: dict = {}
    todo = list(cases)
    while todo:
        script = (f"import sys\nsys.path[:0] = [{TESTS_DIR!r}, {ROOT!r}]\n"
                  f"import {module}\n{module}.child_main({todo!r})\n")
        try:
            proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=timeout)
            stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
            status = f"exit status {rc}" + (f" (signal {-rc})" if rc < 0 else "")
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, rc = _text(exc.stdout), _text(exc.stderr), None
            status = f"HANG: killed after {timeout} s"
        started = finished = None
        for line in stdout.splitlines():
            if not line.startswith(MARK + " "):
                continue
            _, what, name, *rest = line.split(" ", 3)
            if what == "START":
                started = name
            elif what == "OK":
                results[name], started, finished = "ok", None, name
            elif what == "FAIL":
                results[name], started, finished = json.loads(rest[0]), None, name
        tail = (stdout[-1500:] + "\n--- stderr ---\n" + stderr[-2500:]).strip()
        if started is not None:
            results[started] = f"CRASH in this case ({status}); output tail:\n{tail}"
            todo = todo[todo.index(started) + 1:]
        elif rc != 0 and finished is not None:
            # died between cases (a corrupted heap noticed later): charged to the last one
            note = f"CRASH after this case ({status}); output tail:\n{tail}"
            results[finished] = note if results[finished] == "ok" else results[finished] + "\n" + note
            todo = todo[todo.index(finished) + 1:]
        else:
            for name in todo:
                if name not in results:
                    results[name] = f"not run: child ended before its first case ({status}); output tail:\n{tail}"
            todo = []
    return results


def run_cases(module, names: list[str]) -> None:
    """Child side of run_isolated: fresh random inputs, then each case with marker lines."""
    import torch  # noqa: PLC0415  (the child cases use torch; this module does not need it)

    seed = torch.seed()
    print(f"torch seed {seed}", flush=True)
    for name in names:
        func_name, _, param = name.partition(":")
        print(f"{MARK} START {name}", flush=True)
        try:
            func = getattr(module, func_name)
            func(param) if param else func()
            gc.collect()
        except BaseException as e:  # noqa: B036  (reported per case; the child goes on)
            traceback.print_exc()
            msg = "\n".join([f"{type(e).__name__}: {e}", *getattr(e, "__notes__", [])])
            print(f"{MARK} FAIL {name} {json.dumps(msg[:4000])}", flush=True)
        else:
            print(f"{MARK} OK {name}", flush=True)


def assert_all_ok(results: dict) -> None:
    bad = {k: v for k, v in results.items() if v != "ok"}
    assert not bad, f"{len(bad)} of {len(results)} cases failed:\n" + "\n\n".join(
        f"[{k}] {v}" for k, v in bad.items())


def run_forked(body, timeout: float = 300) -> None:
    """Run ``body(phase)`` in a forked child: a crash or a hang fails only this test, naming the
    phase (``phase(name)`` marks which call is running); assertion messages come back as they are.
    With $TVMFAST_TABLE_IN_PROCESS set (debugging) or without ``os.fork``, in this process."""
    if not hasattr(os, "fork") or os.environ.get("TVMFAST_TABLE_IN_PROCESS"):
        body(lambda name: None)
        return
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_fd)
            torch_module = sys.modules.get("torch")
            if torch_module is not None:
                # GNU OpenMP's thread team does not survive fork: a parallel torch op in the
                # child (a sparse tensor's to_dense) waits forever for the parent's threads.
                torch_module.set_num_threads(1)
            body(lambda name: os.write(write_fd, f"phase {name}\n".encode()))
            os.write(write_fd, b"ok\n")
        except BaseException as e:  # report everything (pytest's skip is a BaseException)
            status = "skip" if type(e).__name__ == "Skipped" else "fail"
            text = str(e) if isinstance(e, AssertionError) or status == "skip" else f"{type(e).__name__}: {e}"
            _write_all(write_fd, f"{status}\n{text}".encode("utf-8", "replace"))
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, hung = [], False
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            hung = True
            break
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if ready:
            data = os.read(read_fd, 1 << 16)
            if not data:
                break
            chunks.append(data)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode("utf-8", "replace")
    phases = [line[6:] for line in out.splitlines() if line.startswith("phase ")]
    during = f"during the {phases[-1]} call" if phases else "before the calls"
    if hung:
        pytest.fail(f"[hang] no outcome after {timeout} s {during}", pytrace=False)
    if os.WIFSIGNALED(status):
        pytest.fail(f"[crash] killed by {signal.Signals(os.WTERMSIG(status)).name} {during}", pytrace=False)
    result = out.split("\n", len(phases) + 1)[len(phases):]
    if result and result[0] == "ok":
        return
    if result and result[0] == "skip":
        pytest.skip(result[1] if len(result) > 1 else "")
    pytest.fail(result[1] if len(result) > 1 else f"child exited with {status} {during}", pytrace=False)


def _write_all(fd, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


def outcome(call):
    """("ok", result) or ("error", exception) of call()."""
    try:
        return "ok", call()
    except Exception as e:  # noqa: BLE001
        return "error", e


def as_numpy(x) -> np.ndarray:
    """A tensor result (torch, numpy or tvm_ffi) as a numpy copy."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().numpy().copy()
    return np.from_dlpack(x).copy()
