# Devices and streams: every tensor of a call must be on one device, and a GPU
# call runs on the producer's current stream (made TVM's around the call).

cdef enum:
    # DLPack device types named in messages (DLDeviceType).
    DEVICE_CPU = 1
    DEVICE_CUDA = 2
    DEVICE_CUDA_HOST = 3
    DEVICE_ROCM = 10
    DEVICE_EXT_DEV = 12
    DEVICE_CUDA_MANAGED = 13
    # Data alignment TVM kernels with default buffers assume (TVM's kAllocAlignment).
    DEFAULT_ALIGNMENT = 64

cdef dict DEVICE_NAMES = {DEVICE_CPU: "cpu", DEVICE_CUDA: "cuda", DEVICE_CUDA_HOST: "cuda_host",
                          DEVICE_ROCM: "rocm", DEVICE_CUDA_MANAGED: "cuda_managed",
                          DEVICE_EXT_DEV: "ext_dev"}


cdef str device_str(int32_t device_type, int32_t device_id):
    return f"{DEVICE_NAMES.get(device_type, f'device_type={device_type}')}:{device_id}"


cdef int raise_misaligned(DLTensor* dl, Py_ssize_t pos, uint64_t alignment) except -1:
    raise_arg_error(
        ValueError, pos,
        f"{device_str(dl.device.device_type, dl.device.device_id)} data address "
        f"{<uint64_t>dl.data + dl.byte_offset:#x} is not {alignment}-byte aligned. TVM kernels built "
        f"with default buffers assume aligned data and may crash on it (rt_mod does); for kernels "
        f"whose buffers use offset_factor=1, bind(..., alignment=1)")


cdef inline bint is_misaligned(DLTensor* dl, uint64_t align_mask) noexcept:
    """Data not aligned as the callee assumes (an empty tensor has no data to misread)."""
    cdef int i
    if ((<uint64_t>dl.data + dl.byte_offset) & align_mask) == 0:
        return False
    for i in range(dl.ndim):
        if dl.shape[i] == 0:
            return False
    return True


cdef int note_tensor(CallState* st, TvmfastTensor* t, Py_ssize_t pos,
                     const DLPackExchangeAPI* api, PyObject* obj) except -1:
    """A tensor tvmfast passes: give the callee aligned data, record its device.

    A misaligned CPU tensor (numpy arrays are 16-byte aligned, views start anywhere)
    goes through an aligned scratch copy that is written back after the call if the
    callee changed it, so TVM kernels, which assume aligned data, neither crash nor
    refuse it, and TVM's own checks (shape, strides, dtype) still come first."""
    if is_misaligned(&t.dl, st.align_mask):
        if t.dl.device.device_type != kDLCPU:
            raise_misaligned(&t.dl, pos, st.align_mask + 1)
        if tvmfast_tensor_use_scratch(t, st.align_mask + 1) != 0:
            raise MemoryError()
        st.n_scratch += 1
    return record_device(st, &t.dl, pos, api, obj)


cdef inline int record_device(CallState* st, DLTensor* dl, Py_ssize_t pos,
                              const DLPackExchangeAPI* api, PyObject* obj) except -1:
    """Record where the tensors live (the first non-CPU one picks the stream)."""
    if dl.device.device_type == kDLCPU:
        if st.cpu_pos < 0:
            st.cpu_pos = <int32_t>pos
    elif st.device_type < 0:
        st.device_type = dl.device.device_type
        st.device_id = dl.device.device_id
        st.device_pos = <int32_t>pos
        st.stream_api = api
        st.device_obj = <void*>obj
    return 0


cdef int raise_device_mismatch(Py_ssize_t pos, int32_t device_type, int32_t device_id,
                               CallState* st) except -1:
    raise_arg_error(
        ValueError, pos,
        f"tensor on {device_str(device_type, device_id)}, but argument #{st.device_pos} is on "
        f"{device_str(st.device_type, st.device_id)}; all tensor arguments must be on one device")


cdef int check_devices(CallState* st, TVMFFIAny* packed, Py_ssize_t n) except -1:
    """All tensors must be on one device once any of them is off the CPU."""
    cdef Py_ssize_t i
    cdef DLTensor* dl
    if st.cpu_pos >= 0:
        raise_device_mismatch(st.cpu_pos, DEVICE_CPU, 0, st)
    for i in range(n):
        if packed[i].type_index != kTVMFFITensor:
            continue
        dl = <DLTensor*>(<char*>packed[i].v_ptr + sizeof(TVMFFIObject))
        if dl.device.device_type != st.device_type or dl.device.device_id != st.device_id:
            raise_device_mismatch(i, dl.device.device_type, dl.device.device_id, st)
    return 0


cdef int enter_stream(CallState* st, TVMFFIStreamHandle* prev) except -1:
    """Make the producer's current stream TVM's for this call's device.

    Returns 1 when TVM's stream was changed (restore *prev afterwards), else 0."""
    cdef void* stream = NULL
    if st.stream_api != NULL and st.stream_api.current_work_stream != NULL:
        if st.stream_api.current_work_stream(<DLDeviceType>st.device_type, st.device_id, &stream) != 0:
            raise fetch_error() or RuntimeError("tvmfast: the producer's current_work_stream failed")
    elif st.device_obj != NULL:
        # A producer without the C exchange API: torch through __dlpack__ gets its
        # current stream from torch; others (None) leave TVM's stream alone.
        py_stream = torch_current_stream(<object>st.device_obj, st.device_type, st.device_id)
        if py_stream is None:
            return 0
        stream = <void*><uint64_t>py_stream
    else:
        return 0
    # Usually TVM's stream is already the producer's (the default stream): then
    # one query replaces a set and a restore.
    prev[0] = TVMFFIEnvGetStream(st.device_type, st.device_id)
    if prev[0] == stream:
        return 0
    if TVMFFIEnvSetStream(st.device_type, st.device_id, stream, NULL) != 0:
        raise_ffi_error()
    return 1
