# Devices and streams, as a Python front door fills a call context: every tensor of a
# call must be on one device, and a GPU call runs on the producer's current stream
# (made TVM's around the call by invoke()).

cdef enum:
    # DLPack device types named in messages (DLDeviceType).
    DEVICE_CPU = 1
    DEVICE_CUDA = 2
    DEVICE_CUDA_HOST = 3
    DEVICE_ROCM = 10
    DEVICE_EXT_DEV = 12
    DEVICE_CUDA_MANAGED = 13

cdef dict DEVICE_NAMES = {DEVICE_CPU: "cpu", DEVICE_CUDA: "cuda", DEVICE_CUDA_HOST: "cuda_host",
                          DEVICE_ROCM: "rocm", DEVICE_CUDA_MANAGED: "cuda_managed",
                          DEVICE_EXT_DEV: "ext_dev"}


cdef str device_str(int32_t device_type, int32_t device_id):
    return f"{DEVICE_NAMES.get(device_type, f'device_type={device_type}')}:{device_id}"


cdef inline int record_device(CallContext* st, DLTensor* dl, Py_ssize_t pos,
                              const DLPackExchangeAPI* api, PyObject* obj) except -1:
    """Record where the tensors live (the first non-CPU one picks the stream)."""
    if dl.device.device_type == kDLCPU:
        if st.cpu_pos < 0:
            st.cpu_pos = <int32_t>pos
    else:
        if st.device_type < 0:
            st.device_type = dl.device.device_type
            st.device_id = dl.device.device_id
            st.device_pos = <int32_t>pos
            st.stream_api = api
            st.device_obj = <void*>obj
        if api == torch_fast_api and api != NULL and not gpu_layout_tried:
            # The first torch tensor on a GPU: self-test the TensorImpl read there.
            learn_device_layout(<object>obj)
    return 0


cdef int raise_device_mismatch(Py_ssize_t pos, int32_t device_type, int32_t device_id,
                               CallContext* st) except -1:
    raise_arg_error(
        ValueError, pos,
        f"tensor on {device_str(device_type, device_id)}, but argument #{st.device_pos} is on "
        f"{device_str(st.device_type, st.device_id)}; all tensor arguments must be on one device")


cdef int check_devices(CallContext* st, Py_ssize_t n) except -1:
    """All tensors must be on one device once any of them is off the CPU."""
    cdef Py_ssize_t i
    cdef DLTensor* dl
    cdef TVMFFIAny* packed = st.packed
    if st.cpu_pos >= 0:
        raise_device_mismatch(st.cpu_pos, DEVICE_CPU, 0, st)
    for i in range(n):
        if packed[i].type_index != kTVMFFITensor:
            continue
        dl = <DLTensor*>(<char*>packed[i].v_ptr + sizeof(TVMFFIObject))
        if dl.device.device_type != st.device_type or dl.device.device_id != st.device_id:
            raise_device_mismatch(i, dl.device.device_type, dl.device.device_id, st)
    return 0


cdef int pick_stream(CallContext* st) except -1:
    """The stream a GPU call runs on: the producer's current stream for the device (asked
    through its exchange API, or torch's for a torch tensor that came without one);
    none (TVM's stays) for other producers and for tvm_ffi tensors, as for rt_mod."""
    cdef void* stream = NULL
    if st.stream_api != NULL and st.stream_api.current_work_stream != NULL:
        if st.stream_api.current_work_stream(<DLDeviceType>st.device_type, st.device_id, &stream) != 0:
            raise fetch_error() or RuntimeError("tvmfast: the producer's current_work_stream failed")
    elif st.device_obj != NULL:
        py_stream = torch_current_stream(<object>st.device_obj, st.device_type, st.device_id)
        if py_stream is None:
            return 0
        stream = <void*><uint64_t>py_stream
    else:
        return 0
    st.stream = stream
    st.has_stream = True
    return 0
