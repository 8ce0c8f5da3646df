# A Python front door's call and its outcome: the devices and stream chosen, the call
# made by invoke() (spine/invoke.pxi), its result converted or its error raised exactly as
# tvm_ffi converts rt_mod's.  This layer knows a CallTarget and a CallContext, not the
# classes that make them.

cdef object call_from_python(CallTarget* target, CallContext* ctx, int32_t n, bint at_entry):
    """Call target on ctx.packed[:n] (filled by a converter) and return the result as
    tvm_ffi returns rt_mod's.  The door closes ctx afterwards, whatever happens.
    at_entry: the door is called through its C entry (spine/frame.h), which raises the
    callee's error returned as a CallFailure."""
    cdef TVMFFIAny result
    tvmfast_stamp(TVMFAST_STAGE_CONVERT)
    if ctx.device_type >= 0:  # some tensor is off the CPU
        if not ctx.devices_checked:
            check_devices(ctx, n)
        pick_stream(ctx)
    elif ctx.nested_device_type >= 0:
        # Only a tuple, list or container holds GPU tensors: its first picks the stream.
        ctx.device_type = ctx.nested_device_type
        ctx.device_id = ctx.nested_device_id
        ctx.stream_api = ctx.nested_stream_api
        ctx.devices_checked = True
        pick_stream(ctx)
    return finish_call(ctx, invoke(target, ctx, n, &result, True), &result, at_entry)


cdef inline object finish_call(CallContext* ctx, int outcome, TVMFFIAny* result, bint at_entry):
    """invoke()'s outcome as Python sees rt_mod's: its result (consumed), or its error
    (returned as a CallFailure when at_entry)."""
    cdef Py_ssize_t kept = ctx.kept
    cdef object err
    if outcome == CALL_PY_ERROR:
        err = <object>ctx.error
        Py_DECREF(err)
        ctx.error = NULL
        raise err
    if outcome == CALL_FFI_ERROR:
        if at_entry and kept < 0 and PyErr_Occurred() == NULL:
            err = ffi_error_object()
            if err is not None:
                return call_failure(err)
            raise_ffi_error()
        if kept >= 0:
            try:
                raise_ffi_error()
            except BaseException as cause:
                raise_kept_copy(kept, ctx.align_mask + 1, cause)
        raise_ffi_error()
    if kept >= 0:
        release_result(result)
        raise_kept_copy(kept, ctx.align_mask + 1, None)
    value = convert_result(result, ctx.exchange_api)
    tvmfast_stamp(TVMFAST_STAGE_RESULT)
    return value


cdef object call_with_tvm_ffi(object function, void** items, Py_ssize_t n):
    """The whole call made by tvm_ffi (see call_converts_itself), on the caller's own
    argument array."""
    return PyObject_Vectorcall(function, <PyObject**>items, <size_t>n, NULL)


cdef object call_with_tvm_ffi_list(object function, list args):
    return function(*args)


# ---------------------------------------------------------------------------
# Results: converted where they are made, as tvm_ffi converts rt_mod's.
# ---------------------------------------------------------------------------
cdef object tensor_to_producer(TVMFFIAny* result, const DLPackExchangeAPI* api):
    """A tensor result as the producer's tensor (zero-copy), as tvm_ffi converts one for
    rt_mod called with that producer's tensors; None (result untouched) where that fails."""
    cdef DLManagedTensorVersioned* managed = NULL
    cdef void* py_obj = NULL
    if TVMFFITensorToDLPackVersioned(result.v_ptr, &managed) != 0:
        drop_raised_error()
        return None
    if api.managed_tensor_to_py_object_no_sync(managed, &py_obj) != 0 or py_obj == NULL:
        managed.deleter(managed)
        PyErr_Clear()
        return None
    tensor = <object>py_obj
    Py_DECREF(tensor)  # the cast took a reference of its own
    TVMFFIObjectDecRef(result.v_ptr)  # the producer's tensor holds the managed tensor's
    result.type_index = kTVMFFINone
    return tensor


cdef object convert_result(TVMFFIAny* result, const DLPackExchangeAPI* api):
    """The Python value of a call's result (our reference to it is consumed), as tvm_ffi
    returns it for rt_mod(*args); api: the last exchange-API producer among the arguments."""
    global tvmfast_result_stash
    cdef int32_t tindex = result.type_index
    if tindex == kTVMFFINone:
        return None
    if tindex == kTVMFFIInt:
        return result.v_int64
    if tindex == kTVMFFIFloat:
        return result.v_float64
    if tindex == kTVMFFIBool:
        return result.v_int64 != 0
    if tindex == kTVMFFISmallStr or tindex == kTVMFFISmallBytes:
        return small_str_or_bytes(result)
    if tindex == kTVMFFITensor and api != NULL and api.managed_tensor_to_py_object_no_sync != NULL:
        tensor = tensor_to_producer(result, api)
        if tensor is not None:
            return tensor
    if tindex == kTVMFFITensor and ffi_tensor_layout_known:
        return ffi_tensor_of(result)
    if tindex == kTVMFFIDataType and ffi_value_layout_known:
        return ffi_dtype_value(result.v_dtype)
    if tindex == TVMFAST_FFI_BIGINT and big_ints_in_c:
        try:
            return tvmfast_bigint_to_pylong(result)
        finally:
            TVMFFIObjectDecRef(result.v_ptr)
    if tindex == kTVMFFIOpaquePtr:
        return _ctypes_void_p(<uintptr_t>result.v_ptr or None)  # what tvm_ffi's ctypes.cast gives
    if tindex == kTVMFFIDevice and ffi_value_layout_known and device_results_in_c:
        # As tvm_ffi's make_ret_device: the current device class (TVM's, once imported).
        cls = _ffi_core.__dict__.get("_CLASS_DEVICE", _FFIDevice)
        if isinstance(cls, type) and issubclass(cls, _FFIDevice):
            device = tvmfast_new_instance(cls)
            (<DLDevice*>(<char*><PyObject*>device + sizeof(PyObject)))[0] = result.v_device
            return device
    # Everything else (containers, String objects, other objects): tvm_ffi builds it.
    tvmfast_result_stash = result[0]
    try:
        if container_api_offset == 0 and api != NULL and api.managed_tensor_from_py_object_no_sync != NULL:
            return _take_result(standin_for(api))
        value = take_result()
    finally:
        release_stash()
    if api != NULL and container_api_offset != 0 and isinstance(value, _CContainerBase):
        # Tagged as tvm_ffi tags a container returned by rt_mod: its tensors convert back to
        # the producer's lazily.
        (<const DLPackExchangeAPI**>(<char*><PyObject*>value + container_api_offset))[0] = api
    return value


cdef object ffi_tensor_of(TVMFFIAny* result):
    """A tensor result as a tvm_ffi.Tensor (consumes our reference), made as tvm_ffi's
    make_tensor_from_chandle makes one: the current tensor class's object with its handle and
    DLTensor pointer set (tvm_ffi does not tie tensor wrappers to their handles)."""
    cls = _ffi_core.__dict__.get("_CLASS_TENSOR", _FFITensor)
    tensor = tvmfast_new_instance(cls)
    (<void**>(<char*><PyObject*>tensor + cobject_handle_offset))[0] = result.v_ptr
    (<void**>(<char*><PyObject*>tensor + cobject_handle_offset + sizeof(void*)))[0] = (
        <char*>result.v_ptr + sizeof(TVMFFIObject))
    result.type_index = kTVMFFINone
    return tensor


cdef dict dtype_names = {}  # DLDataType (as 32 bits) -> its name


cdef object ffi_dtype_value(DLDataType dtype):
    """A dtype result as tvm_ffi.dtype, made as tvm_ffi's make_dtype_from_dl_data_type makes it."""
    cdtype = tvmfast_new_instance(_FFIDataType)
    (<DLDataType*>(<char*><PyObject*>cdtype + sizeof(PyObject)))[0] = dtype
    cls = _ffi_core.__dict__.get("_CLASS_DTYPE", _ffi_dtype_type)
    key = (<uint32_t*>&dtype)[0]
    name = dtype_names.get(key)
    if name is None:
        name = dtype_names[key] = cdtype.__str__()  # TVM-FFI's own spelling, asked once per dtype
    value = str.__new__(cls, name)
    value._tvm_ffi_dtype = cdtype
    return value


cdef object small_str_or_bytes(TVMFFIAny* result):
    """A short string result (kept inline in the Any) as str or bytes, as tvm_ffi gives it."""
    cdef TVMFFIByteArray chars = TVMFFISmallBytesGetContentByteArray(result)
    if result.type_index == kTVMFFISmallStr:
        return PyUnicode_DecodeUTF8(chars.data, chars.size, NULL)
    return PyBytes_FromStringAndSize(chars.data, chars.size)


cdef void release_result(TVMFFIAny* result) noexcept:
    if result.type_index >= kTVMFFIStaticObjectBegin:
        TVMFFIObjectDecRef(result.v_ptr)
    result.type_index = kTVMFFINone


def _argument_kinds_state():
    """How this process converts the kinds whose C path depends on a check or on the installed
    tvm_ffi (for python -m tvmfast and bug reports)."""
    parts = []
    if sys.modules.get("numpy") is not None:
        parts.append("numpy arrays read in C (checked against numpy's __dlpack__)" if numpy_reading_agrees()
                     else "numpy arrays through numpy's __dlpack__ (the check of its fields disagreed)")
    parts.append("ints beyond int64 as ffi.BigInt in C" if big_ints_in_c
                 else "ints beyond int64 left to tvm_ffi (its libtvm_ffi has no BigInt)")
    parts.append("objects tvm_ffi builds reached through a FieldGetter" if stash_getter is not None
                 else "objects tvm_ffi builds reached through a tvm_ffi Function")
    return "; ".join(parts)
