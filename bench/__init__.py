"""tvmfast's benchmarks.

    python -m bench.harness          CPU: every way to call a kernel, side by side
    python -m bench.gpu              GPU: the forum thread's int4 GEMV table, decode chain, profiles
    python -m bench.kernels DIR      export the GPU runs' kernels for a machine with TVM's runtime only
    python -m bench.report           bench/RESULTS.md and the figures in README.md and docs/

Modules: kernels (the test suite's TVM kernels, from tests/support/tvm_kernels.py, and the export
command), timing (the call paths and how they are timed), report (tables, JSON, charts, the
generated figures), ctypes_call, nvcc_lib and gpu_probe (the comparison paths that go around
tvmfast).
"""
