"""tvmfast: call compiled Apache TVM functions from PyTorch at the cost of one C call.

    from tvmfast import bind
    f = bind(rt_mod)             # resolve the entry function once
    f(a, b, out)                 # same result as rt_mod(a, b, out)
"""
from __future__ import annotations

from typing import Any

import tvm_ffi as _tvm_ffi  # noqa: F401  (loads libtvm_ffi before the extension needs it)

from tvmfast import alloc
from tvmfast._core import BoundFunction, FrozenFunction

__version__ = "0.2.0"
__all__ = ["alloc", "bind", "BoundFunction", "FrozenFunction", "__version__"]


def bind(obj: Any, name: str | None = None, *, num_args: int | None = None, release_gil: bool | None = None,
         alignment: int | None = None) -> BoundFunction:
    """Bind a TVM function for cheap repeated calls.

    Parameters
    ----------
    obj
        A TVM runtime module (from ``tvm.build``, ``tvm.compile`` or
        ``tvm_ffi.load_module``), a ``tvm_ffi.Function``, a ``relax.VirtualMachine``
        (with ``name``), the path of an exported library, or an object that wraps a
        ``tvm_ffi.Function`` (tvm_ffi's ``__tvm_ffi_object__`` protocol, e.g. a CuTe DSL
        ``cute.compile`` result).  A plain Python function is refused: wrap it with
        ``tvm_ffi.convert(fn)``.
    name
        Function to take from a module; default: the module's ``entry_name``,
        else ``"main"``.  An unknown name raises ``AttributeError`` naming it.
    num_args
        Expected argument count, checked before each call (TVM's generated code
        checks it too). Needed by ``freeze`` before the first call, unless the
        count is otherwise known (a Relax VM function's arity); after a
        successful call, ``f.num_args`` gives the count learned from it.
    release_gil
        Release the GIL around the C call.  Default: as tvm_ffi calls the function
        (``Function.release_gil``, on unless ``TVM_FFI_RELEASE_GIL_BY_DEFAULT=0``), so a
        callee whose worker threads need the GIL cannot deadlock where ``rt_mod``
        returns.  ``False`` saves a release/acquire per call (bench/RESULTS.md gives
        the cost); only for functions that never wait for another thread running
        Python (compiled kernels).
    alignment
        Data alignment in bytes the function may assume (a power of two from 1 to
        4096).  A misaligned CPU tensor
        is passed through an aligned copy (written back if the function changes
        it); a misaligned GPU tensor raises ``ValueError``.  Default: 64 for a
        function taken from a module or library (TVM kernels built with default
        buffers assume 64-byte aligned data and crash on less), 1 (no
        requirement) for a ``tvm_ffi.Function`` or a Relax VM function.

    Returns
    -------
    BoundFunction
        ``f(*args)`` returns exactly what ``rt_mod(*args)`` returns.
    """
    return BoundFunction(obj, name, num_args=num_args, release_gil=release_gil, alignment=alignment)
