# Public C-level API of tvmfast.  Another Cython module can
#
#     from tvmfast._core cimport FrozenFunction, tvmfast_call_ptrs
#
# and call a prepared kernel from C, with or without the GIL (see README,
# "C-level API").  Everything declared here is stable for a given tvmfast release.
from libc.stdint cimport int32_t, int64_t, uint64_t
from tvmfast._c_api cimport TVMFFIAny, TVMFFIObjectHandle, DLTensor, DLPackExchangeAPI, TvmfastTensor


# What the call layer needs of the function it calls (a BoundFunction's, shared
# by the FrozenFunctions made from it; immutable after bind()).
ctypedef struct CallTarget:
    TVMFFIObjectHandle handle    # the tvm_ffi.Function (kept alive by BoundFunction.function)
    uint64_t align_mask          # data alignment the callee assumes, - 1 (0: none)
    bint release_gil


cdef class BoundFunction:
    cdef void* vectorcall        # vectorcallfunc; first field read through tp_vectorcall_offset
    cdef CallTarget target
    cdef readonly object function
    cdef int declared_args       # bind's num_args (checked before each call), -1 when not given
    cdef int seen_num_args       # argument count of the last successful call (or a VM's arity)
    cdef bint from_module        # taken from a TVM module or library: its functions check arity
    cdef object wrapper          # the object bound when it wraps the function (__tvm_ffi_object__)
    cdef int direct_args         # positional count the wrapper passes through as is (-1: any)
    cdef object bind_args        # (path, name) when bound from a library path: how to pickle


cdef class FrozenFunction:
    cdef void* vectorcall
    cdef readonly BoundFunction bound
    cdef readonly int num_args            # total arguments of the kernel
    cdef readonly int num_dynamic         # arguments still taken per call
    cdef list args                        # every argument (frozen ones; None where dynamic)
    cdef int32_t* dynamic_pos             # positions of the dynamic arguments
    cdef int32_t* tensor_pos              # positions of frozen tensors, converted again per call
    cdef int num_frozen_tensors
    cdef TVMFFIAny* template              # frozen non-tensor values, converted once
    cdef TVMFFIObjectHandle* held         # objects the template references (our references)
    cdef int num_held
    cdef bint use_tvm_ffi                 # a frozen value only tvm_ffi converts
    # call_ptrs: the prepared tensors' metadata as of prepare() (own copies).
    cdef DLTensor* snapshot
    cdef int64_t* snapshot_dims
    cdef const DLPackExchangeAPI* snapshot_stream_api
    cdef int32_t* percall_pos             # positions of frozen tuples, lists, dicts and tvm_ffi
    cdef int num_percall                  # proxies: converted again per call (they may change)


# Call a prepared function (all arguments frozen) with `n` data pointers that
# replace, in order, the data addresses of its tensor arguments; shapes, dtypes,
# strides and devices are those the tensors had at prepare().  Needs no GIL: a
# caller that holds it has it released around the call, as for f(...); a function
# bound with release_gil=False takes it for the call.  Sets no stream (GPU kernels go
# to TVM's current stream for the device).
# The caller vouches that each pointer holds such a tensor for the whole call.
# Returns 0 on success, -1 with the error left raised in TVM-FFI's thread-local
# slot (raise it in Python with FrozenFunction.raise_last_error()).
cdef int tvmfast_call_ptrs(FrozenFunction prepared, void** ptrs, int n) noexcept nogil
