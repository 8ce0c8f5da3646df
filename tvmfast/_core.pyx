# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible=False
"""The hot path of tvmfast: Python arguments -> TVMFFIAny array -> TVMFFIFunctionCall.

One file per concern, included here in dependency order:

    tvmfast_helpers.h  inline C++ (direct torch export, vectorcall, result stash)
    errors.pxi         the raise_* helpers and TVM-FFI error conversion
    torch_export.pxi   the direct torch export and its self-test
    convert.pxi        argument kinds, the type cache, one converter per kind
    device.pxi         one-device check, the producer's stream around GPU calls
    call.pxi           the call and its result
    bound.pxi          BoundFunction (bind)
    frozen.pxi         FrozenFunction (freeze, prepare, call_ptrs)

Every C declaration is in _c_api.pxd (TVM-FFI, DLPack, the helpers header) and
_python.pxd (CPython); the public C-level API is _core.pxd.
"""
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memcmp
from libc.stdlib cimport malloc, calloc, free

from tvmfast._c_api cimport *
from tvmfast._python cimport *

import atexit
import operator
import os
import sys

import tvm_ffi

include "errors.pxi"
include "torch_export.pxi"
include "convert.pxi"
include "device.pxi"
include "call.pxi"
include "bound.pxi"
include "frozen.pxi"


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
