# The call: TVMFFIFunctionCall on the packed arguments (with the stream set for GPU
# tensors), and its outcome converted exactly as tvm_ffi converts rt_mod's.  This
# layer knows a CallTarget and a CallState, not the classes that make them.

cdef int take_stashed_result(void* self, const TVMFFIAny* args, int32_t num_args,
                             TVMFFIAny* result) noexcept nogil:
    # Hands tvm_ffi the result parked in this thread's stash (our reference moves to it).
    result[0] = tvmfast_result_stash
    tvmfast_result_stash.type_index = kTVMFFINone
    tvmfast_result_stash.v_int64 = 0
    return 0


cdef object _take_result = register_helper("tvmfast._take_result", take_stashed_result)


cdef object convert_result(TVMFFIAny* result, CallState* st):
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
    # Everything else (tensors, containers, strings...): tvm_ffi builds the Python
    # value, as for rt_mod.  A torch input passed along makes tvm_ffi return torch
    # tensors, zero-copy.
    tvmfast_result_stash = result[0]
    if st.exemplar != NULL:
        return _take_result(<object>st.exemplar)
    return _take_result()


cdef object call_packed(CallTarget* target, TVMFFIAny* packed, int32_t n, CallState* st):
    """TVMFFIFunctionCall with the producer's stream made TVM's around it for GPU
    tensors; the caller releases st afterwards (release_state)."""
    cdef int ret
    cdef TVMFFIAny result
    cdef TVMFFIStreamHandle prev = NULL
    cdef TVMFFIObjectHandle handle = target.handle
    cdef bint swap_stream = False
    cdef DLPackManagedTensorAllocator prev_allocator = NULL
    cdef bint swap_allocator = False
    cdef int32_t i
    result.type_index = kTVMFFINone
    result.zero_padding = 0
    result.v_int64 = 0
    if st.device_type >= 0:  # some tensor is off the CPU
        if not st.devices_checked:
            check_devices(st, packed, n)
        swap_stream = enter_stream(st, &prev)
    if st.exchange_api != NULL and st.exchange_api.managed_tensor_allocator != NULL:
        # As tvm_ffi does for torch arguments: tensors the callee allocates
        # (TVMFFIEnvTensorAlloc) come from the producer's allocator.
        prev_allocator = TVMFFIEnvGetDLPackManagedTensorAllocator()
        swap_allocator = prev_allocator != st.exchange_api.managed_tensor_allocator
        if swap_allocator and TVMFFIEnvSetDLPackManagedTensorAllocator(
                st.exchange_api.managed_tensor_allocator, 0, NULL) != 0:
            if swap_stream:
                TVMFFIEnvSetStream(st.device_type, st.device_id, prev, NULL)
            raise_ffi_error()
    if target.release_gil:
        # Every object the callee reads is owned by st (tensors hold their Python
        # objects), so other threads running Python meanwhile cannot free it.
        with nogil:
            ret = TVMFFIFunctionCall(handle, packed, n, &result)
    else:
        ret = TVMFFIFunctionCall(handle, packed, n, &result)
    if swap_allocator:
        TVMFFIEnvSetDLPackManagedTensorAllocator(prev_allocator, 0, NULL)
    if swap_stream:
        # Restore TVM's stream, also when the call failed.
        TVMFFIEnvSetStream(st.device_type, st.device_id, prev, NULL)
    if ret != 0:
        raise_ffi_error()
    if st.n_scratch:
        for i in range(st.n_tensors):
            if st.tensors[i].scratch != NULL:
                tvmfast_tensor_settle(st.tensors[i])
    return convert_result(&result, st)


cdef object call_with_tvm_ffi(object function, object args):
    """The whole call made by tvm_ffi: an argument tvmfast does not convert itself."""
    return function(*args)
