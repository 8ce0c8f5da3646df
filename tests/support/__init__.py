"""What the test modules share: no test module imports another, they import from here.

``support`` is found because tests/ is on sys.path (conftest.py puts it there; the children that
support.isolation starts get it too, and tests that start a script put it on $PYTHONPATH).  The
benchmarks import their kernels from here as well (bench/kernels.py), never the reverse.  Importing
this package imports nothing else: bench uses tvm_kernels where pytest is not installed.

* :mod:`support.helpers` -- ``needs_tvm``, ``nan_like`` and checks of tvmfast's error messages;
* :mod:`support.add_checks` -- the 128-element add kernel's cases: fresh inputs, poisoned outputs,
  results checked, a freed-memory sentinel (torch only);
* :mod:`support.buffers` -- arrays and views whose data starts at a chosen alignment;
* :mod:`support.isolation` -- child processes for cases that can crash or hang, and the test kernels
  and C++ functions built once in the test process and loaded by the children;
* :mod:`support.tvm_kernels` -- the TVM kernels the tests and the benchmarks build;
* :mod:`support.cpp_sources` -- C++ test functions (``tvm_ffi.cpp``) used by several modules;
* :mod:`support.cute_kernels` -- CuTe DSL kernels (needs nvidia-cutlass-dsl);
* ``support/multi_gpu_decode.py`` -- one rank of the two-GPU decode chain (a script that
  test_multi_gpu.py starts with torchrun).
"""
