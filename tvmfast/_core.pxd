# Public C-level API of tvmfast.  Another Cython module can
#
#     from tvmfast._core cimport FrozenFunction, tvmfast_call_ptrs
#
# and call a prepared kernel from C, with or without the GIL (see README,
# "C-level API").  Everything declared here is stable for a given tvmfast release.
from libc.stdint cimport int32_t, int64_t, uint64_t
from tvmfast._c_api cimport TVMFFIAny, TVMFFIObjectHandle, DLTensor, DLPackExchangeAPI

cdef extern from "Python.h":
    ctypedef object (*vectorcallfunc)(object, object, size_t, object)


# What the argument loop learns about devices while it converts; it decides
# whether a stream has to be set around the call.
ctypedef struct CallState:
    uint64_t align_mask          # required data alignment - 1
    int32_t device_type          # first non-CPU device seen, or -1
    int32_t device_id
    int32_t device_pos           # its argument position
    int32_t cpu_pos              # first CPU tensor position, or -1
    const DLPackExchangeAPI* stream_api   # producer to ask for the current stream
    void* device_obj             # the Python object of that first non-CPU tensor (borrowed)
    void* exemplar               # a borrowed torch-like input, for result conversion
    int32_t n_owned              # owned tensor handles to release after the call
    TVMFFIObjectHandle* owned
    int32_t n_dltensor_ptr       # arguments passed as kTVMFFIDLTensorPtr
    void* temps                  # list of Python temporaries, or NULL
    void** items                 # the call's Python arguments (dynamic ones if frozen)
    void* frozen                 # the FrozenFunction making the call, or NULL
    TVMFFIAny* packed            # the packed arguments, once complete
    int32_t num_packed
    int32_t devices_checked      # 1: all tensors known to share one device


cdef class BoundFunction:
    cdef void* vectorcall        # vectorcallfunc; first field read through tp_vectorcall_offset
    cdef TVMFFIObjectHandle handle
    cdef readonly object function
    cdef readonly int num_args   # -1 when unknown
    cdef public bint release_gil
    cdef int tensor_mode         # TENSOR_MODE_* in _core.pyx
    cdef uint64_t align_mask     # data addresses must have these bits clear
    cdef int seen_num_args       # argument count of the last successful call
    cdef object call_vector(self, void** items, Py_ssize_t n)
    cdef object convert_and_call(self, void** items, Py_ssize_t n, TVMFFIAny* packed,
                                 DLTensor* dl, TVMFFIObjectHandle* owned)


cdef class FrozenFunction:
    cdef void* vectorcall
    cdef readonly BoundFunction bound
    cdef readonly int num_args            # total arguments of the kernel
    cdef readonly int num_dynamic         # arguments still taken per call
    cdef int num_tensor_slots             # DLTensor* arguments (call_ptrs takes one pointer each)
    cdef int32_t* dynamic_pos
    cdef TVMFFIAny* template              # packed arguments with frozen slots filled
    cdef DLTensor* frozen_dl              # storage for frozen DLTensors
    cdef int64_t* shape_copy              # shape/strides snapshot of frozen tensors
    cdef const int64_t** live_shape       # producer's shape array, for the resize check
    cdef CallState frozen_state
    cdef dict frozen_values               # position -> value, kept alive
    cdef object call_vector(self, void** items, Py_ssize_t n)
    cdef int build(self) except -1
    cdef void free_buffers(self) noexcept
    cdef int snapshot_shapes(self) except -1
    cdef int check_frozen_shapes(self) except -1
    cdef void start_state(self, CallState* st, TVMFFIObjectHandle* owned, void** items) noexcept


# Call a prepared function (all arguments frozen) with `n` data pointers that
# replace, in order, the data addresses of its tensor arguments.  Runs without the
# GIL; sets no stream (GPU kernels go to TVM's current stream for the device).
# Returns 0 on success, -1 with the error left raised in TVM-FFI's thread-local
# slot (raise it in Python with FrozenFunction.raise_last_error()).
cdef int tvmfast_call_ptrs(FrozenFunction prepared, void** ptrs, int n) noexcept nogil
