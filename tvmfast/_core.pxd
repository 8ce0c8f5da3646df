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


# One call's state, on the caller's C stack.  Owns (and release_state releases):
# the TvmfastTensor objects in `tensors`, the handles in `objects`, `temps`.
ctypedef struct CallState:
    uint64_t align_mask
    int32_t device_type          # first non-CPU device seen, or -1
    int32_t device_id
    int32_t device_pos           # its argument position
    int32_t cpu_pos              # first CPU tensor position, or -1
    const DLPackExchangeAPI* stream_api   # producer to ask for the current stream
    const DLPackExchangeAPI* exchange_api  # last exchange-API producer: allocator, results
    int32_t n_scratch            # misaligned tensors passed through an aligned copy
    void* device_obj             # the Python object of that first non-CPU tensor (borrowed)
    int32_t n_tensors
    TvmfastTensor** tensors      # tensor objects passed (one per tensor argument at most)
    int32_t n_objects
    TVMFFIObjectHandle* objects  # other objects created for the call (strings)
    void* temps                  # list of Python temporaries, or NULL
    int32_t devices_checked      # 1: all tensors known to share one device


cdef class BoundFunction:
    cdef void* vectorcall        # vectorcallfunc; first field read through tp_vectorcall_offset
    cdef CallTarget target
    cdef readonly object function
    cdef readonly int num_args   # -1 when unknown
    cdef int seen_num_args       # argument count of the last successful call
    cdef object bind_args        # (path, name) when bound from a library path: how to pickle
    cdef object call_vector(self, void** items, Py_ssize_t n)
    cdef object convert_and_call(self, void** items, Py_ssize_t n, TVMFFIAny* packed,
                                 TvmfastTensor** tensors, TVMFFIObjectHandle* objects)


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
    cdef int num_tensor_slots
    cdef DLTensor* snapshot
    cdef int64_t* snapshot_dims
    cdef const DLPackExchangeAPI* snapshot_stream_api
    cdef object call_vector(self, void** items, Py_ssize_t n)
    cdef int pack_frozen(self, TVMFFIAny* packed, CallState* st) except -1
    cdef int take_snapshot(self, uint64_t align_mask) except -1
    cdef list full_args(self, void** items, Py_ssize_t n)


# Call a prepared function (all arguments frozen) with `n` data pointers that
# replace, in order, the data addresses of its tensor arguments; shapes, dtypes,
# strides and devices are those the tensors had at prepare().  Runs without the
# GIL; sets no stream (GPU kernels go to TVM's current stream for the device).
# The caller vouches that each pointer holds such a tensor for the whole call.
# Returns 0 on success, -1 with the error left raised in TVM-FFI's thread-local
# slot (raise it in Python with FrozenFunction.raise_last_error()).
cdef int tvmfast_call_ptrs(FrozenFunction prepared, void** ptrs, int n) noexcept nogil
