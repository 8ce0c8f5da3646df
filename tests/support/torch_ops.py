"""What the torch-op tests share: a Relax VM whose functions allocate their results, and a probe of the
tvmfast Python frames a call enters (an op's C kernel enters none)."""
from __future__ import annotations

import os
import sys

import tvmfast

PACKAGE_DIR = os.path.dirname(os.path.abspath(tvmfast.__file__))
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env_with_support() -> dict:
    """The environment for a child Python that imports this package (``support``) and the tvmfast this
    process runs (the working directory first, as pytest's own path has it)."""
    parts = [os.getcwd(), TESTS_DIR, os.environ.get("PYTHONPATH")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in parts if p))


def build_relax_vm():
    """A Relax VM whose functions allocate their results: mm_relu(x, w) = relu(x @ w) with a symbolic row
    count, and both(x, w) = (x @ w, relu(x @ w))."""
    import tvm
    from tvm import relax
    from tvm.script import ir as I
    from tvm.script import relax as R

    @I.ir_module
    class Model:
        @R.function
        def mm_relu(x: R.Tensor(("n", 8), "float32"), w: R.Tensor((8, 3), "float32")):
            with R.dataflow():
                y = R.nn.relu(R.matmul(x, w))
                R.output(y)
            return y

        @R.function
        def both(x: R.Tensor(("n", 8), "float32"), w: R.Tensor((8, 3), "float32")):
            with R.dataflow():
                y = R.matmul(x, w)
                z = R.nn.relu(y)
                R.output(y, z)
            return (y, z)

    return relax.VirtualMachine(tvm.compile(Model, target="llvm"), tvm.cpu())


def tvmfast_frames(call):
    """The tvmfast Python frames (package files, generated op kernels) entered during call()."""
    seen = []

    def profiler(frame, event, arg):
        if event == "call":
            name = frame.f_code.co_filename
            if name.startswith(PACKAGE_DIR) or name.startswith("<tvmfast"):
                seen.append(f"{name}:{frame.f_code.co_name}")

    sys.setprofile(profiler)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen
