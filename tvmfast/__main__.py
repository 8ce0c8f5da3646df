"""``python -m tvmfast``: print the environment, for bug reports.

Versions of Python, tvmfast, apache-tvm-ffi, apache-tvm, torch and numpy; whether torch tensors
take the direct export (``at::toDLPackNonOwning``) or torch's DLPack C exchange API; whether
as_torch_op registers C kernels; how numpy arrays, big ints and tvm_ffi's objects are converted; CUDA.
"""

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import sys


def _dist_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_export_state(torch):
    """Run one tiny bound call on a torch tensor (which sets the direct export up, as any first
    call does) and say which path torch tensors take."""
    import tvm_ffi

    import tvmfast
    from tvmfast import _core

    state = getattr(_core, "_torch_direct_export_state", None)
    if state is None:
        return "unknown (this tvmfast has no _torch_direct_export_state)"
    nop = tvm_ffi.get_global_func("testing.nop", allow_missing=True)
    if nop is None:
        return "unknown (no tvm_ffi function to probe with)"
    try:
        tvmfast.bind(nop, alignment=1)(torch.zeros(4))
    except Exception as exc:  # a report, not a test: say what happened
        return f"unknown (the probe call failed: {type(exc).__name__}: {exc})"
    line = state()
    if line.startswith("off"):
        line += "; torch tensors take torch's DLPack C exchange API"
    return line


def _core_call(name, default):
    """tvmfast._core.<name>(), or default for a tvmfast without it."""
    from tvmfast import _core

    fn = getattr(_core, name, None)
    return fn() if fn is not None else default


def _cuda_lines(torch, tvm):
    lines = []
    if torch is not None:
        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            lines.append(f"torch CUDA {torch.version.cuda}: {torch.cuda.device_count()} device(s): {names}")
        else:
            built = f"torch built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only torch build"
            lines.append(f"torch CUDA: not available ({built})")
    if tvm is not None:
        try:
            enabled = tvm.runtime.enabled("cuda")
            exists = enabled and tvm.cuda(0).exist
            lines.append(f"apache-tvm CUDA runtime: {'built in' if enabled else 'not built in'}"
                         + (f", device 0 {'present' if exists else 'absent'}" if enabled else ""))
        except Exception as exc:
            lines.append(f"apache-tvm CUDA: unknown ({type(exc).__name__}: {exc})")
    return lines or ["CUDA: unknown (neither torch nor apache-tvm installed)"]


def _tvmfast_version():
    """tvmfast's version; for a git checkout (an in-place build, an editable install), with the
    commit as a wheel built from it would have it (0.3.0.dev0+g<hash>, .dirty for changed files)."""
    from tvmfast import _version

    version = _version.__version__
    if "+" not in version:
        version += _version.git_local_version(os.path.dirname(os.path.dirname(os.path.abspath(_version.__file__))))
    return version


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tvmfast",
        description="Print what a tvmfast bug report needs: the versions of Python, tvmfast, apache-tvm-ffi, "
                    "apache-tvm, torch and numpy, whether torch tensors take tvmfast's direct export or "
                    "torch's DLPack C exchange API (and why not), whether as_torch_op registers C kernels, "
                    "how numpy arrays, ints beyond int64 and objects tvm_ffi builds are converted, and CUDA.",
        epilog="Paste its output into the report.")
    parser.add_argument("--version", action="version", version=f"tvmfast {_tvmfast_version()}",
                        help="print tvmfast's version and exit")
    return parser.parse_args(argv)


def main(argv=None):
    parse_args(argv)
    import tvm_ffi
    import tvm_ffi.libinfo

    import tvmfast

    torch = tvm = None
    if importlib.util.find_spec("numpy") is not None:
        import numpy  # noqa: F401 (imported for the report's numpy line)
    if importlib.util.find_spec("torch") is not None:
        import torch
    if importlib.util.find_spec("tvm") is not None:
        try:
            import tvm
        except Exception as exc:  # e.g. an apache-tvm that does not match the installed apache-tvm-ffi
            print(f"(importing apache-tvm failed: {type(exc).__name__}: {exc})")

    rows = [
        ("tvmfast", f"{_tvmfast_version()} ({os.path.dirname(tvmfast.__file__)})"),
        ("python", f"{platform.python_version()} ({platform.python_implementation()}, "
                   f"{platform.system()} {platform.machine()})"),
        ("apache-tvm-ffi", f"{_dist_version('apache-tvm-ffi') or tvm_ffi.__version__} "
                           f"({tvm_ffi.libinfo.find_libtvm_ffi()})"),
        ("apache-tvm", _dist_version("apache-tvm") or "not installed"),
        ("torch", (torch.__version__ if torch is not None else "not installed")),
        ("numpy", _dist_version("numpy") or "not installed"),
        ("torch tensors", _torch_export_state(torch) if torch is not None else "- (torch not installed)"),
        ("as_torch_op", _core_call("_native_op_state", "unknown") if torch is not None else "- (torch not installed)"),
        ("other kinds", _core_call("_argument_kinds_state", "unknown")),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for line in _cuda_lines(torch, tvm):
        print(line)
    return 0


def run(argv=None):
    """main(), quiet when stdout is closed early (``python -m tvmfast | head -1``)."""
    try:
        status = main(argv)
        sys.stdout.flush()  # here, where the error can be caught, rather than at exit
    except BrokenPipeError:
        # Python would report the error again when it flushes stdout at exit: point stdout at
        # /dev/null first (as the Python documentation advises for SIGPIPE).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(run())
