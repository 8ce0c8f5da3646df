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


cdef inline int record_device(CallContext* ctx, DLTensor* dl, Py_ssize_t pos,
                              const DLPackExchangeAPI* api, PyObject* obj) except -1:
    """Record where the tensors live (the first non-CPU one picks the stream)."""
    if dl.device.device_type == kDLCPU:
        if ctx.cpu_pos < 0:
            ctx.cpu_pos = <int32_t>pos
    else:
        if ctx.device_type < 0:
            ctx.device_type = dl.device.device_type
            ctx.device_id = dl.device.device_id
            ctx.device_pos = <int32_t>pos
            ctx.stream_api = api
            ctx.device_obj = <void*>obj
        if api == torch_fast_api and api != NULL:
            torch_tensor_on_gpu(<object>obj)
    return 0


cdef int raise_device_mismatch(Py_ssize_t pos, int32_t device_type, int32_t device_id,
                               CallContext* ctx) except -1:
    raise_arg_error(
        ValueError, pos,
        f"tensor on {device_str(device_type, device_id)}, but argument #{ctx.device_pos} is on "
        f"{device_str(ctx.device_type, ctx.device_id)}; all tensor arguments must be on one device")


cdef int check_devices(CallContext* ctx, Py_ssize_t n) except -1:
    """All tensors must be on one device once any of them is off the CPU."""
    cdef Py_ssize_t i
    cdef DLTensor* dl
    cdef TVMFFIAny* packed = ctx.packed
    if ctx.cpu_pos >= 0:
        raise_device_mismatch(ctx.cpu_pos, DEVICE_CPU, 0, ctx)
    for i in range(n):
        if packed[i].type_index != kTVMFFITensor:
            continue
        dl = <DLTensor*>(<char*>packed[i].v_ptr + sizeof(TVMFFIObject))
        if dl.device.device_type != ctx.device_type or dl.device.device_id != ctx.device_id:
            raise_device_mismatch(i, dl.device.device_type, dl.device.device_id, ctx)
    return 0


cdef int pick_stream(CallContext* ctx) except -1:
    """The stream a GPU call runs on: the producer's current stream for the device (asked
    through its exchange API, or torch's for a torch tensor that came without one);
    none (TVM's stays) for other producers and for tvm_ffi tensors, as for rt_mod."""
    cdef void* stream = NULL
    if ctx.stream_api != NULL and ctx.stream_api.current_work_stream != NULL:
        if ctx.stream_api.current_work_stream(<DLDeviceType>ctx.device_type, ctx.device_id, &stream) != 0:
            raise fetch_error() or RuntimeError("tvmfast: the producer's current_work_stream failed")
    elif ctx.device_obj != NULL:
        py_stream = torch_current_stream(<object>ctx.device_obj, ctx.device_type, ctx.device_id)
        if py_stream is None:
            return 0
        stream = <void*><uint64_t>py_stream
    else:
        return 0
    ctx.stream = stream
    ctx.has_stream = True
    return 0
