# The call: TVMFFIFunctionCall on the packed arguments (with the stream set for GPU
# tensors), and its outcome converted exactly as tvm_ffi converts rt_mod's.

cdef int take_stashed_result(void* self, const TVMFFIAny* args, int32_t num_args,
                             TVMFFIAny* result) noexcept nogil:
    result[0] = tvmfast_result_stash
    tvmfast_result_stash.type_index = kTVMFFINone
    tvmfast_result_stash.v_int64 = 0
    return 0


cdef object _take_result = register_helper("tvmfast._take_result", take_stashed_result)


cdef object convert_result(TVMFFIAny* result, CallState* st):
    global tvmfast_result_stash
    cdef int32_t tindex = result.type_index
    if tindex == kTVMFFIInt:
        return result.v_int64
    if tindex == kTVMFFIFloat:
        return result.v_float64
    if tindex == kTVMFFIBool:
        return result.v_int64 != 0
    if tindex == kTVMFFIDLTensorPtr:
        # The function handed back one of the borrowed DLTensors we passed (an
        # identity-like function): return that argument itself.
        return argument_with_dltensor(st, result.v_ptr)
    # Objects (tensors, arrays, strings...): let tvm_ffi build the Python value.  A
    # torch input passed along makes tvm_ffi return torch tensors, zero-copy.
    tvmfast_result_stash = result[0]
    if st.exemplar != NULL:
        return _take_result(<object>st.exemplar)
    return _take_result()


cdef object argument_at(CallState* st, Py_ssize_t pos):
    """The Python object passed at argument position ``pos`` of this call."""
    cdef FrozenFunction frozen
    cdef Py_ssize_t k
    if st.frozen == NULL:
        return <object>st.items[pos]
    frozen = <FrozenFunction>st.frozen
    if pos in frozen.frozen_values:
        return frozen.frozen_values[pos]
    for k in range(frozen.num_dynamic):
        if frozen.dynamic_pos[k] == pos:
            return <object>st.items[k]


cdef object argument_with_dltensor(CallState* st, void* dltensor):
    cdef Py_ssize_t i
    for i in range(st.num_packed):
        if st.packed[i].type_index == kTVMFFIDLTensorPtr and st.packed[i].v_ptr == dltensor:
            return argument_at(st, i)
    raise RuntimeError("tvmfast: the function returned a DLTensor* that is none of its arguments")


cdef bint error_wants_owned_tensors(TVMFFIObjectHandle err) noexcept:
    """True for the type error a C++ function taking ffi::Tensor gives a DLTensor*
    ("Mismatched type on argument #0 ... expected Tensor but got DLTensor*")."""
    cdef TVMFFIErrorCell* cell = <TVMFFIErrorCell*>(<char*>err + sizeof(TVMFFIObject))
    cdef bytes kind = cell.kind.data[:cell.kind.size]
    cdef bytes msg = cell.message.data[:cell.message.size]
    return kind == b"TypeError" and b"DLTensor*" in msg


cdef int call_packed(BoundFunction fn, TVMFFIAny* packed, int32_t n, CallState* st,
                     TVMFFIAny* result) except -2:
    """TVMFFIFunctionCall, with the producer's stream made TVM's around it for GPU tensors.

    Returns 0 on success, -1 when TVM raised (error left in TVM-FFI's slot) and the
    stream, if any, has been restored."""
    cdef int ret
    cdef TVMFFIStreamHandle prev = NULL
    cdef TVMFFIObjectHandle handle = fn.handle
    cdef bint swap_stream = False
    result.type_index = kTVMFFINone
    result.zero_padding = 0
    result.v_int64 = 0
    if st.device_type >= 0:  # some tensor is off the CPU
        if not st.devices_checked:
            check_devices(st, packed, n)
        swap_stream = enter_stream(st, &prev)
    if fn.release_gil:
        with nogil:
            ret = TVMFFIFunctionCall(handle, packed, n, result)
    else:
        ret = TVMFFIFunctionCall(handle, packed, n, result)
    if swap_stream:
        # Restore TVM's stream, also when the call failed.
        TVMFFIEnvSetStream(st.device_type, st.device_id, prev, NULL)
    return 0 if ret == 0 else -1


# A call that must be made again with owned tensors (see finish_call).
cdef object RETRY_OWNED = object()


cdef object finish_call(BoundFunction fn, TVMFFIAny* packed, int32_t n, CallState* st):
    """Call and convert the outcome; st's owned handles are released by the caller."""
    cdef TVMFFIAny result
    cdef TVMFFIObjectHandle err = NULL
    st.packed = packed
    st.num_packed = n
    if call_packed(fn, packed, n, st, &result) == 0:
        if fn.tensor_mode == TENSOR_MODE_UNDECIDED and st.n_dltensor_ptr:
            fn.tensor_mode = TENSOR_MODE_BORROWED
        if result.type_index == kTVMFFINone:
            return None
        return convert_result(&result, st)
    if fn.tensor_mode == TENSOR_MODE_UNDECIDED and st.n_dltensor_ptr and PyErr_Occurred() == NULL:
        TVMFFIErrorMoveFromRaised(&err)
        if err != NULL and error_wants_owned_tensors(err):
            # A C++ function taking ffi::Tensor: switch this function to owned
            # tensors for good and let the caller convert again.
            TVMFFIObjectDecRef(err)
            fn.tensor_mode = TENSOR_MODE_OWNED
            return RETRY_OWNED
        if err != NULL:
            TVMFFIErrorSetRaised(err)
            TVMFFIObjectDecRef(err)
    raise_ffi_error()
