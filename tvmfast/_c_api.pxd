# Every C declaration tvmfast uses, in one place: the TVM-FFI C ABI
# (tvm/ffi/c_api.h, tvm/ffi/extra/c_env_api.h) and DLPack (dlpack/dlpack.h,
# including the DLPackExchangeAPI that torch exposes as
# ``torch.Tensor.__dlpack_c_exchange_api__``).  The .pyx modules cimport from here
# and declare nothing of their own; tvmfast's own headers (inline C++, one per concern:
# spine/frame.h, memory/tensor.h, memory/numpy_array.h, memory/aligned_copy.h, torch/layout.h, torch/op_entries.h,
# measure/trace.h) are declared here too.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from cpython.ref cimport PyObject
from tvmfast._python cimport PyTypeObject


cdef extern from "dlpack/dlpack.h" nogil:
    ctypedef enum DLDeviceType:
        kDLCPU
        kDLCUDA
        kDLCUDAHost
        kDLROCM
        kDLCUDAManaged
        kDLExtDev

    ctypedef struct DLDevice:
        DLDeviceType device_type
        int32_t device_id

    ctypedef struct DLDataType:
        uint8_t code
        uint8_t bits
        uint16_t lanes

    ctypedef struct DLTensor:
        void* data
        DLDevice device
        int32_t ndim
        DLDataType dtype
        int64_t* shape
        int64_t* strides
        uint64_t byte_offset

    ctypedef struct DLPackVersion:
        uint32_t major
        uint32_t minor

    ctypedef struct DLManagedTensor:
        DLTensor dl_tensor
        void* manager_ctx
        void (*deleter)(DLManagedTensor* self)

    ctypedef struct DLManagedTensorVersioned:
        DLPackVersion version
        void* manager_ctx
        void (*deleter)(DLManagedTensorVersioned* self)
        uint64_t flags
        DLTensor dl_tensor

    ctypedef struct DLPackExchangeAPIHeader:
        DLPackVersion version
        DLPackExchangeAPIHeader* prev_api

    ctypedef int (*DLPackManagedTensorAllocator)(
        DLTensor* prototype, DLManagedTensorVersioned** out, void* error_ctx,
        void (*SetError)(void* error_ctx, const char* kind, const char* message))
    ctypedef int (*DLPackManagedTensorFromPyObjectNoSync)(
        void* py_object, DLManagedTensorVersioned** out)
    ctypedef int (*DLPackDLTensorFromPyObjectNoSync)(void* py_object, DLTensor* out)
    ctypedef int (*DLPackCurrentWorkStream)(
        DLDeviceType device_type, int32_t device_id, void** out_current_stream)
    ctypedef int (*DLPackManagedTensorToPyObjectNoSync)(
        DLManagedTensorVersioned* tensor, void** out_py_object)

    ctypedef struct DLPackExchangeAPI:
        DLPackExchangeAPIHeader header
        DLPackManagedTensorAllocator managed_tensor_allocator
        DLPackManagedTensorFromPyObjectNoSync managed_tensor_from_py_object_no_sync
        DLPackManagedTensorToPyObjectNoSync managed_tensor_to_py_object_no_sync
        DLPackDLTensorFromPyObjectNoSync dltensor_from_py_object_no_sync
        DLPackCurrentWorkStream current_work_stream

    int DLPACK_MAJOR_VERSION


cdef extern from "tvm/ffi/c_api.h" nogil:
    ctypedef void* TVMFFIObjectHandle

    enum:
        kTVMFFINone
        kTVMFFIInt
        kTVMFFIBool
        kTVMFFIFloat
        kTVMFFIOpaquePtr
        kTVMFFIDataType
        kTVMFFIDevice
        kTVMFFIDLTensorPtr
        kTVMFFIRawStr
        kTVMFFISmallStr
        kTVMFFISmallBytes
        kTVMFFIStaticObjectBegin
        kTVMFFIError
        kTVMFFIFunction
        kTVMFFITensor

    ctypedef struct TVMFFIObject:
        uint64_t combined_ref_count
        int32_t type_index

    ctypedef struct TVMFFIAny:
        int32_t type_index
        uint32_t zero_padding
        int64_t v_int64
        double v_float64
        void* v_ptr
        TVMFFIObject* v_obj
        DLDevice v_device
        DLDataType v_dtype

    ctypedef struct TVMFFIByteArray:
        const char* data
        size_t size

    ctypedef int (*TVMFFISafeCallType)(
        void* handle, const TVMFFIAny* args, int32_t num_args, TVMFFIAny* result) noexcept

    TVMFFIByteArray TVMFFISmallBytesGetContentByteArray(const TVMFFIAny* value)
    int TVMFFIObjectIncRef(TVMFFIObjectHandle obj)
    int TVMFFIStringFromByteArray(const TVMFFIByteArray* input, TVMFFIAny* out)
    int TVMFFIObjectDecRef(TVMFFIObjectHandle obj)
    int TVMFFIFunctionCall(TVMFFIObjectHandle func, TVMFFIAny* args, int32_t num_args,
                           TVMFFIAny* result)
    int TVMFFIFunctionCreate(void* self, TVMFFISafeCallType safe_call,
                             void (*deleter)(void* self), TVMFFIObjectHandle* out)
    int TVMFFIFunctionSetGlobal(const TVMFFIByteArray* name, TVMFFIObjectHandle f,
                                int allow_override)
    void TVMFFIErrorMoveFromRaised(TVMFFIObjectHandle* result)
    void TVMFFIErrorSetRaised(TVMFFIObjectHandle error)
    void TVMFFIErrorSetRaisedFromCStr(const char* kind, const char* message)
    int TVMFFITensorToDLPackVersioned(TVMFFIObjectHandle from_, DLManagedTensorVersioned** out)
    int TVMFFIBytesFromByteArray(const TVMFFIByteArray* input, TVMFFIAny* out)
    int TVMFFIFunctionGetGlobal(const TVMFFIByteArray* name, TVMFFIObjectHandle* out)
    int TVMFFITensorFromDLPack(DLManagedTensor* src, int32_t require_alignment,
                               int32_t require_contiguous, TVMFFIObjectHandle* out)
    int TVMFFITensorFromDLPackVersioned(DLManagedTensorVersioned* src,
                                        int32_t require_alignment,
                                        int32_t require_contiguous,
                                        TVMFFIObjectHandle* out)


cdef extern from "tvm/ffi/extra/c_env_api.h" nogil:
    ctypedef void* TVMFFIStreamHandle
    int TVMFFIEnvSetStream(int32_t device_type, int32_t device_id,
                           TVMFFIStreamHandle stream,
                           TVMFFIStreamHandle* opt_out_original_stream)
    TVMFFIStreamHandle TVMFFIEnvGetStream(int32_t device_type, int32_t device_id)
    int TVMFFIEnvSetDLPackManagedTensorAllocator(DLPackManagedTensorAllocator allocator,
                                                 int write_to_global_context,
                                                 DLPackManagedTensorAllocator* opt_out_original_allocator)
    DLPackManagedTensorAllocator TVMFFIEnvGetDLPackManagedTensorAllocator()


# tvmfast's own inline C++, one header per concern (paths relative to tvmfast/).

# spine/frame.h: the frame every call goes through, the result stash, vectorcall.
cdef extern from "spine/frame.h" nogil:
    TVMFFIAny tvmfast_result_stash
    int TVMFFIFunctionCallFromTvmfast(TVMFFIObjectHandle func, TVMFFIAny* args, int32_t num_args,
                                      TVMFFIAny* result)
    void tvmfast_enable_vectorcall(PyTypeObject* tp, Py_ssize_t offset)

    void* tvmfast_read_ptr(PyObject* obj, Py_ssize_t offset)


# spine/frame.h, the front doors' vectorcall entries (they run Python: not nogil).
cdef extern from "spine/frame.h":
    ctypedef PyObject* (*tvmfast_door_call)(PyObject* callable, void** args, size_t nargsf,
                                            PyObject* kwnames)
    ctypedef PyObject* (*tvmfast_failure_raiser)(PyObject* failure) noexcept
    void tvmfast_set_door_entries(tvmfast_door_call bound, tvmfast_door_call frozen,
                                  PyTypeObject* failure_type, tvmfast_failure_raiser raiser)
    PyObject* tvmfast_bound_entry(PyObject* callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    PyObject* tvmfast_frozen_entry(PyObject* callable, PyObject** args, size_t nargsf, PyObject* kwnames)
    object tvmfast_new_instance(object cls)
    object tvmfast_tp_call(object callable, object args)


# spine/big_int.h: Python ints beyond int64 as ffi.BigInt (libtvm_ffi's, looked up at import).
cdef extern from "spine/big_int.h":
    int TVMFAST_FFI_BIGINT
    int tvmfast_bigint_api_init()
    int tvmfast_bigint_from_pylong(PyObject* value, TVMFFIAny* out) except? -1
    object tvmfast_bigint_to_pylong(const TVMFFIAny* value)


# memory/tensor.h: the TvmfastTensor object every tensor argument is passed as.
cdef extern from "memory/tensor.h" nogil:
    ctypedef struct TvmfastTensor:
        TVMFFIObject header
        DLTensor dl
        PyObject* owner
        void* torch_handle
        void* scratch
        void* source
        uint32_t shared_slots
        DLManagedTensorVersioned* source_keeper
        int64_t dims[1]           # TVMFAST_INLINE_NDIM in fact: shape, then strides
    TvmfastTensor* tvmfast_tensor_new() noexcept
    int tvmfast_tensor_own_dims(TvmfastTensor* t) noexcept
    void tvmfast_tensor_release(TvmfastTensor* t) noexcept
    void tvmfast_set_python_exiting() noexcept
    int32_t (*tvmfast_delete_aten_tensor)(void* handle) noexcept


# memory/numpy_array.h: numpy arrays read where numpy keeps their metadata.
cdef extern from "memory/numpy_array.h" nogil:
    void tvmfast_numpy_dtypes_init() noexcept
    int tvmfast_numpy_describe(PyObject* obj, TvmfastTensor* t) noexcept


# memory/aligned_copy.h: misaligned CPU data passed through an aligned copy.
cdef extern from "memory/aligned_copy.h" nogil:
    bint tvmfast_is_compact(const DLTensor* dl) noexcept
    int tvmfast_copy_refusal(const DLTensor* dl) noexcept
    void tvmfast_byte_range(const DLTensor* dl, uintptr_t* lo, uintptr_t* hi) noexcept
    int tvmfast_tensor_copy_in(TvmfastTensor* t, size_t alignment) noexcept
    void tvmfast_tensor_write_back(TvmfastTensor* t) noexcept
    uint64_t tvmfast_tensor_foreign_refs(const TvmfastTensor* t) noexcept
    void tvmfast_tensor_point_back(TvmfastTensor* t) noexcept
    bint tvmfast_same_elements(const DLTensor* x, const DLTensor* y) noexcept
    bint tvmfast_interleaved(const DLTensor* x, const DLTensor* y) noexcept


# torch/layout.h: torch tensors read in C (TensorImpl, toDLPackNonOwning).
cdef extern from "torch/layout.h" nogil:
    void* tvmfast_torch_to_dl
    void tvmfast_set_torch_to_dl(void* fn, int with_read_only)
    Py_ssize_t tvmfast_thpvariable_tensor_offset
    int tvmfast_torch_export(PyObject* obj, DLTensor* out) noexcept
    int tvmfast_torch_export_nonowning(PyObject* obj, DLTensor* out) noexcept
    Py_ssize_t tvmfast_torch_keyset_offset
    uint64_t tvmfast_torch_lazy_bits
    void tvmfast_set_torch_keyset(Py_ssize_t offset, uint64_t bits)
    uint64_t tvmfast_torch_keyset(PyObject* obj, Py_ssize_t offset) noexcept
    ctypedef struct TvmfastTorchLayout:
        int enabled
        Py_ssize_t keyset
        Py_ssize_t storage
        Py_ssize_t storage_data
        Py_ssize_t storage_checked
        Py_ssize_t sizes
        Py_ssize_t storage_offset
        Py_ssize_t dtype
        Py_ssize_t device
        int n_keysets
        uint64_t keysets[16]
        DLDataType dtypes[64]
        uint8_t itemsize[64]
        int8_t dl_device[8]
    TvmfastTorchLayout tvmfast_torch_layout
    int tvmfast_torch_read(PyObject* obj, DLTensor* out) noexcept
    int tvmfast_torch_read_impl(const char* impl, DLTensor* out) noexcept


# measure/trace.h: stage stamps, empty unless built with -DTVMFAST_TRACE.
cdef extern from "measure/trace.h" nogil:
    enum TvmfastStage:
        TVMFAST_STAGE_START
        TVMFAST_STAGE_OPEN
        TVMFAST_STAGE_CONVERT
        TVMFAST_STAGE_DEVICES
        TVMFAST_STAGE_ENV
        TVMFAST_STAGE_GIL_RELEASE
        TVMFAST_STAGE_CALL
        TVMFAST_STAGE_GIL_ACQUIRE
        TVMFAST_STAGE_RESULT
        TVMFAST_STAGE_CLOSE
        TVMFAST_NUM_STAGES
    enum: TVMFAST_TRACE_ENABLED
    uint64_t tvmfast_stage_ticks[]
    uint64_t tvmfast_stage_clock() noexcept
    void tvmfast_stamp(int stage) noexcept


# The native torch op's entry points and torch's functions it calls (native_op.pxi).
cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "torch/op_entries.h" nogil:
    enum: TVMFAST_MAX_OPS
    ctypedef void (*tvmfast_boxed_kernel)(uint64_t* stack, uint64_t num_args, uint64_t num_outputs) noexcept
    ctypedef int (*tvmfast_op_body_fn)(int slot, uint64_t* stack, uint64_t num_args, uint64_t num_outputs,
                                       PyObject** exc) noexcept nogil
    ctypedef struct TvmfastTorchOpApi:
        int32_t (*library_init_impl)(const char* ns, const char* key, const char* file, uint32_t line,
                                     void** ret) noexcept
        int32_t (*library_impl)(void* library, const char* name, tvmfast_boxed_kernel fn) noexcept
        int32_t (*delete_library)(void* library) noexcept
        int32_t (*empty_strided)(int64_t ndim, const int64_t* sizes, const int64_t* strides, int32_t dtype,
                                 int32_t device_type, int32_t device_index, void** ret) noexcept nogil
        int32_t (*new_tensor_handle)(void* orig, void** ret) noexcept nogil
        int32_t (*get_dtype)(void* tensor, int32_t* ret) noexcept nogil
        int32_t device_type_cpu
        int32_t device_type_cuda
    TvmfastTorchOpApi tvmfast_torch_op_api
    void tvmfast_set_torch_alloc_api(uintptr_t empty_strided, uintptr_t new_tensor_handle, uintptr_t get_dtype,
                                     int32_t device_type_cpu, int32_t device_type_cuda) noexcept
    void tvmfast_set_torch_op_api(uintptr_t library_init_impl, uintptr_t library_impl, uintptr_t delete_library,
                                  uintptr_t bump_version, uintptr_t delete_tensor, uintptr_t requires_grad,
                                  uintptr_t try_get_forward_level, uintptr_t inference_mode_enabled) noexcept
    int tvmfast_autograd_inert(const void* impl) noexcept
    int tvmfast_bump_version(void* tensor_handle) noexcept
    int tvmfast_inference_mode_enabled() noexcept
    void tvmfast_set_op_body(tvmfast_op_body_fn body) noexcept
    tvmfast_boxed_kernel tvmfast_op_entry_at(int slot) noexcept
    int tvmfast_atomic_add(int* counter, int delta) noexcept
    int tvmfast_atomic_load(int* counter) noexcept
    void tvmfast_atomic_store(int* counter, int value) noexcept
    void* tvmfast_load_ptr(void** p) noexcept
    void tvmfast_store_ptr(void** p, void* v) noexcept
    int PyGILState_Check() noexcept
    void tvmfast_set_op_overload_call(PyTypeObject* tp) noexcept
