# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible=False
"""The hot path of tvmfast: Python arguments -> TVMFFIAny array -> TVMFFIFunctionCall.

One file per concern, included here in dependency order:

    tvmfast_helpers.h  inline C++ (TvmfastTensor and its pool, misaligned copies,
                       direct torch export)
    errors.pxi         the raise_* helpers and TVM-FFI error conversion
    tvm_ffi_bridge.pxi what tvm_ffi's Python layer converts for tvmfast (registered helpers)
    once.pxi           one-time set-ups: reentrant, independent of torch's modes, fork-safe
    torch_export.pxi   the direct torch export and its self-test
    context.pxi        CallContext: one call's buffers, state, stream and allocator swap
    convert.pxi        argument kinds, the type cache, one converter per kind
    device.pxi         alignment and misaligned copies, one-device check, the stream
    call.pxi           the call through a context, and its result
    bound.pxi          BoundFunction (bind)
    frozen.pxi         FrozenFunction (freeze, prepare)
    pointers.pxi       the raw-pointer calls (call_ptrs, tvmfast_call_ptrs)
    floors.pxi         benchmark floors (a C loop, a bare def method)
    native_op.pxi      as_torch_op's C kernel (torch's stable C ABI)

Every C declaration is in _c_api.pxd (TVM-FFI, DLPack, the helpers header) and
_python.pxd (CPython); the public C-level API is _core.pxd.

Lifetime model: who owns what a pointer handed to C refers to
------------------------------------------------------------
* Tensor arguments (torch, other DLPack C exchange API producers, numpy through
  tvm_ffi.from_dlpack) are passed as a TvmfastTensor: a reference-counted
  ffi::Tensor holding a strong reference to the Python object and its own copy of
  shape and strides (tvmfast_helpers.h).  The data stays allocated while that
  object lives; the object lives at least as long as the call, and as long as any
  callee that kept the tensor (an ffi.Array, a Relax VM result, a Python callback)
  holds it.  Nothing points into the producer's shape arrays or into the C stack.
* Misaligned CPU data (a function that assumes alignment: bind's ``alignment``, 64
  for a TVM module's functions; numpy arrays and views are often misaligned): the
  tensor is passed as an aligned copy owned by its TvmfastTensor, with the tensor's
  own shape, strides and dtype (TVM's checks see what rt_mod would pass), only where
  the copy is indistinguishable from the caller's memory for a kernel:
    - only elements are copied and written back, never the gaps between them;
    - its bytes overlap no other tensor argument, except the very same elements
      passed again (k(x, x)), which share one copy;
    - after the call, success or failure, exactly the elements the callee changed
      are written back (compared with a snapshot taken at copy time, so what the
      caller's side changed meanwhile stays);
    - the callee keeps nothing of it: a kept copy or a view of it would not alias the
      caller's tensor, so the call raises ValueError naming the argument, after the
      write-back (a copy that is the call's result, and held by nothing else, is made
      to describe the caller's memory again: an identity returns the caller's tensor).
  Everything else (other overlaps, elements far apart, a shrunk torch storage,
  strided sub-byte types, GPU data) is refused with a ValueError naming the argument
  and the fix; no copy is made for a function bound with alignment=1.
* tvm_ffi objects (tvm_ffi.Tensor, Shape, Function...) are passed as the handle the
  Python object owns; the caller's reference keeps it alive through the call.
* str arguments become ffi Strings owned by the call (released after it); int,
  float, bool and None are values.
* Anything else is converted by tvm_ffi itself (the whole call is tvm_ffi's).
* Dynamic call: everything above is created and released within the call (the
  CallContext on the C stack owns it), whether or not the GIL is released.
* freeze / prepare: tvmfast keeps its own list of the argument objects (never the
  caller's dict).  Immutable values are converted once and their objects held by
  the FrozenFunction; frozen tensors are exported again at every call, so a call
  is f(*same_objects) made now whatever happened to them since (resize_, set_,
  copy_, an optimizer step, the caller's del).  The FrozenFunction's state is
  immutable after construction, so calls from many threads share it safely.
* call_ptrs / tvmfast_call_ptrs: the one raw-pointer escape hatch.  Shapes,
  strides, dtypes and devices are tvmfast's own snapshot taken at prepare(); the
  data pointers are the caller's, who vouches that they hold such tensors for the
  whole call.
* The GIL is released around TVMFFIFunctionCall by default, as tvm_ffi does
  (Function.release_gil): a callee whose worker thread runs Python or drops a kept
  tensor (whose deleter takes the GIL) must not deadlock.  It is released only
  after every reference above was taken.  What another thread does meanwhile to the
  same tensors' storage (resize_, set_) is the user's data race, as with torch's
  own ops running without the GIL.
* Results are converted after the call from the result alone: a tensor becomes the
  last exchange-API producer's tensor (zero-copy), anything else is built by
  tvm_ffi with a private stand-in tensor of that producer; no argument is exported
  again after Python code (a callback) may have changed it.
* Process-wide state (the type cache, torch's set-up) is written under the GIL and
  a lock; a thread never classifies a torch tensor on half-set state.  The one-time
  set-ups are reentrant and fork-safe (once.pxi); os.register_at_fork resets what a
  fork child inherits from threads that do not exist in it.
"""
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF, Py_XDECREF
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memcmp, memset
from libc.stdlib cimport malloc, calloc, free

from tvmfast._c_api cimport *
from tvmfast._python cimport *

import atexit
import operator
import os
import sys
import threading
from numbers import Number

import tvm_ffi

include "errors.pxi"
include "tvm_ffi_bridge.pxi"
include "once.pxi"
include "torch_export.pxi"
include "context.pxi"
include "convert.pxi"
include "device.pxi"
include "call.pxi"
include "bound.pxi"
include "frozen.pxi"
include "pointers.pxi"
include "floors.pxi"
include "native_op.pxi"


def _init_vectorcall():
    cdef BoundFunction b = BoundFunction.__new__(BoundFunction)
    cdef FrozenFunction f = FrozenFunction.__new__(FrozenFunction)
    tvmfast_enable_vectorcall(<PyTypeObject*><PyObject*>BoundFunction,
                              <Py_ssize_t>(<char*>&b.vectorcall - <char*><PyObject*>b))
    tvmfast_enable_vectorcall(<PyTypeObject*><PyObject*>FrozenFunction,
                              <Py_ssize_t>(<char*>&f.vectorcall - <char*><PyObject*>f))


_init_vectorcall()


def _python_exiting():
    tvmfast_set_python_exiting()


# Tensors a callee keeps past the end of the interpreter give up their owners quietly.
atexit.register(_python_exiting)
os.register_at_fork(after_in_child=_after_fork_in_child)
