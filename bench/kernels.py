"""The benchmarks' TVM kernels: the test suite's own (``tests/support/tvm_kernels.py``: the
benchmarks import from the tests' support package, never the reverse), and the command that
exports the GPU runs' kernels::

    python -m bench.kernels DIR [--arch sm_90]

(a folder of ``<name>.so`` and ``<name>.cu`` for a machine with only TVM's runtime: point
``--kernel-dir`` or $TVMFAST_KERNEL_DIR at it).
"""
from __future__ import annotations

import argparse
import os
import sys

# tests/ holds the package ``support`` (tests/support/__init__.py imports nothing).
_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from support.tvm_kernels import (  # noqa: E402,F401  (re-exported: bench.kernels.<name>)
    KERNEL_DIR_ENV,
    NAMED_KERNELS,
    SEED_GEMV,
    _build,
    build_add,
    build_add_cuda,
    build_add_dynamic,
    build_int4_gemv,
    build_scale,
    build_seed_gemv_cuda,
    build_sum_args,
    build_tvmscript,
    cuda_source,
    cuda_target,
    export_kernels,
    int4_gemv_reference,
    kernel_dir,
    named_kernel,
    random_int4_gemv_inputs,
    seed_gemv_args,
)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.kernels",
        description="Export the kernels of the GPU tests and benchmark into a folder, for a machine "
                    f"with only TVM's runtime (then point --kernel-dir or ${KERNEL_DIR_ENV} at it).")
    parser.add_argument("folder")
    parser.add_argument("--arch", default=None, help="e.g. sm_90 (default: this machine's GPU, else sm_90)")
    args = parser.parse_args(argv)
    print("wrote", ", ".join(export_kernels(args.folder, args.arch)))


if __name__ == "__main__":
    main()
