# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible=False
"""The hot path of tvmfast: Python arguments -> TVMFFIAny array -> TVMFFIFunctionCall.

One file per concern, in rooms by what lives in them (docs/development.md has the map
and how one call travels through it).  They are included below in this order; Cython
reads the whole module before compiling it, so a name may be used above its file.

    spine/      the call itself, which every front door fills and hands over
      errors.pxi          the raise_* helpers and TVM-FFI error conversion
      tvm_ffi_bridge.pxi  what tvm_ffi's Python layer converts for tvmfast
      context.pxi         CallContext: one call's buffers, state, stream and allocator swap
      convert.pxi         argument kinds, the type cache, one converter per kind
      arrays.pxi          numpy arrays read in C, other __dlpack__ producers imported in C
      containers.pxi      tuples, lists, dicts, tvm_ffi containers, dtypes, devices
      devices.pxi         the one-device check and the stream of a Python door's call
      invoke.pxi          invoke(): the call, top to bottom (the spine)
      results.pxi         a Python door's call and its outcome: result or error
    memory/
      aligned_copy.pxi    misaligned CPU data around a call (rule: aligned_copy.h)
    doors/      the front doors
      bound.pxi           BoundFunction (bind): the dynamic call
      frozen.pxi          FrozenFunction (freeze, prepare)
      pointers.pxi        the raw-pointer calls (call_ptrs, tvmfast_call_ptrs)
    torch/      everything that knows torch's insides
      once.pxi            one-time set-ups: reentrant, mode-free, fork-safe
      export.pxi          the direct export of torch tensors, its set-up
      probes.pxi          every probe of torch's layout, and its self-test
      native_op.pxi       as_torch_op's C kernel (torch's stable C ABI)
      op_registry.pxi     the native op's set-up, slots and registration
    measure/    benchmark hooks, not API
      floors.pxi          benchmark floors (a C loop, a bare def method)
      stages.pxi          stage timing (measure/trace.h; empty unless built traced)

Every C declaration is in _c_api.pxd (TVM-FFI, DLPack, tvmfast's own headers: spine/frame.h, spine/big_int.h,
memory/tensor.h, memory/numpy_array.h, memory/aligned_copy.h, torch/layout.h, torch/op_entries.h,
measure/trace.h) and _python.pxd (CPython); the public C-level API is _core.pxd.

Who owns what every pointer handed to C refers to, per argument kind and call form, is
docs/safety.md's "Lifetime model"; the native op's own rules are at the top of
torch/native_op.pxi.
"""
cimport cython
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF, Py_XDECREF
from cpython.pycapsule cimport (PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New, PyCapsule_SetDestructor,
                                PyCapsule_SetName)
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memcmp, memset
from libc.stdlib cimport malloc, calloc, free

from tvmfast._c_api cimport *
from tvmfast._python cimport *

import atexit
import ctypes
import operator
import os
import sys
import threading
from numbers import Number

import tvm_ffi

include "spine/errors.pxi"
include "spine/tvm_ffi_bridge.pxi"
include "spine/context.pxi"
include "spine/convert.pxi"
include "spine/arrays.pxi"
include "spine/containers.pxi"
include "spine/devices.pxi"
include "spine/invoke.pxi"
include "spine/results.pxi"
include "memory/aligned_copy.pxi"
include "doors/bound.pxi"
include "doors/frozen.pxi"
include "doors/pointers.pxi"
include "torch/once.pxi"
include "torch/export.pxi"
include "torch/probes.pxi"
include "torch/native_op.pxi"
include "torch/op_registry.pxi"
include "measure/floors.pxi"
include "measure/stages.pxi"


def _init_vectorcall():
    cdef BoundFunction b = BoundFunction.__new__(BoundFunction)
    cdef FrozenFunction f = FrozenFunction.__new__(FrozenFunction)
    tvmfast_set_door_entries(<tvmfast_door_call>bound_vectorcall, <tvmfast_door_call>frozen_vectorcall,
                             <PyTypeObject*><PyObject*>CallFailure, raise_call_failure)
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
