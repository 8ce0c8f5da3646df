"""tvmfast: call compiled Apache TVM functions from PyTorch at the cost of one C call.

    from tvmfast import bind
    f = bind(rt_mod)             # resolve the entry function once
    f(a, b, out)                 # same result as rt_mod(a, b, out)
"""
# (No `from __future__ import annotations`: bind's annotations are evaluated here, so
# typing.get_type_hints(tvmfast.bind) needs no typing names left in the module's namespace.)
import typing as _typing

import tvm_ffi as _tvm_ffi  # noqa: F401  (loads libtvm_ffi before the extension needs it)

from tvmfast import _core, alloc
from tvmfast._core import BoundFunction, FrozenFunction
from tvmfast._version import __version__

__all__ = ["alloc", "bind", "BoundFunction", "FrozenFunction", "__version__"]


def bind(obj: _typing.Any, name: str | None = None, *, num_args: int | None = None, release_gil: bool | None = None,
         alignment: int | None = None) -> BoundFunction:
    """Bind a TVM function for cheap repeated calls.

    Parameters
    ----------
    obj
        A TVM runtime module (``tvm.compile(...).jit()``, ``tvm.tirx.build``,
        ``tvm_ffi.load_module``) or the ``tvm.compile`` result itself (its jitted module is
        bound), a ``tvm_ffi.Function``, a ``relax.VirtualMachine``
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
        kernel compiled by TVM (built with default buffers, it assumes 64-byte
        aligned data and crashes on less), 1 (no requirement) for anything else (a
        C++ function such as a ``tvm_ffi.cpp.load_inline`` one, a Python callback, a
        Relax VM function), however it was looked up: ``bind(mod, "f")`` and
        ``bind(mod.f)`` agree.  Where tvmfast cannot tell (a library that is not an
        ELF file), 64 for a function taken from a module or library, else 1.

    Returns
    -------
    BoundFunction
        ``f(*args)`` returns exactly what ``rt_mod(*args)`` returns.
    """
    return BoundFunction(obj, name, num_args=num_args, release_gil=release_gil, alignment=alignment)


def _mark_not_traceable(tp: type) -> None:
    """torch.compile: what Dynamo finds as ``tp.__call__`` (never what a call runs; see
    doors/bound.pxi) is a Python function marked as ``torch.compiler.disable`` marks one, with a
    reason that says what to do.  torch is not imported."""
    call_slot = tp.__dict__["__call__"]  # the type's own call (its slot wrapper), which an explicit
    # f.__call__(...) keeps making (not self(...): a Python subclass's call would come back here)

    def __call__(self, *args, **kwargs):
        return call_slot(self, *args, **kwargs)

    __call__.__qualname__ = f"{tp.__name__}.__call__"
    __call__.__doc__ = f"Call the function: ``f(*args)`` (a {tp.__name__} is called through its C slot)."
    __call__._torchdynamo_disable = True  # type: ignore[attr-defined]
    __call__._torchdynamo_disable_msg = (  # type: ignore[attr-defined]
        f"a tvmfast.{tp.__name__} is one C call, which torch.compile cannot trace (the graph breaks "
        "there; with fullgraph=True it is this error). Register the bound function as a torch custom op once, "
        "op = f.as_torch_op(\"mylib::name\", mutates_args=(...)), and call op(...) instead: ops work under "
        "torch.compile (fullgraph=True too), torch.export and torch.func transforms. tvmfast marks its call "
        "this way; there is no torch.compiler.disable of yours to remove")
    _core._set_python_call(tp, __call__)


_mark_not_traceable(BoundFunction)
_mark_not_traceable(FrozenFunction)
del _mark_not_traceable, _typing
