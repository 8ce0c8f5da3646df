# Arrays that are not DLPack C exchange API producers: numpy arrays, read in C
# (memory/numpy_array.h), and any other __dlpack__ producer, whose capsule is imported
# in C as tvm_ffi imports it for rt_mod (its legacy __dlpack__(), then
# TVMFFITensorFromDLPack).  Both are passed like any other tensor: misaligned data
# through an aligned copy (memory/aligned_copy.h), devices recorded.
#
# Owners: a numpy array read in C is passed as a TvmfastTensor holding a reference to
# the array (its data lives as long as the array; numpy will not resize an array others
# reference).  An imported capsule's tensor is a TVM-FFI object holding the producer's
# DLManagedTensor; the call context holds our reference to it (ctx_hold_object).

# Whether numpy arrays are read in C: None until the first array, then whether the
# reading agreed with numpy's own __dlpack__ on every sample (else every array takes the
# __dlpack__ path).
cdef object numpy_read_checked = None


cdef bint numpy_reading_agrees() except -1:
    """Compare memory/numpy_array.h's reading with numpy's legacy DLPack export on sample
    arrays of every dtype it reads (contiguous, strided, transposed, 0-d, empty), once."""
    global numpy_read_checked
    if numpy_read_checked is not None:
        return numpy_read_checked
    tvmfast_numpy_dtypes_init()
    agrees = False
    try:
        agrees = check_numpy_samples()
    except Exception:  # a numpy that differs: its __dlpack__ it is
        agrees = False
    numpy_read_checked = agrees
    return agrees


def _numpy_arrays_read_in_c():
    """Whether this numpy's arrays are read in C (the sample check agreed); for tests."""
    return bool(numpy_reading_agrees())


cdef bint check_numpy_samples() except -1:
    cdef TvmfastTensor* t
    cdef DLManagedTensor* managed
    cdef DLTensor* dl
    cdef int i
    np = sys.modules["numpy"]
    if np.ndarray.__basicsize__ < 72:  # PyArrayObject's fields up to flags
        return False
    names = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
             "longlong", "ulonglong", "intc", "uintc", "float16", "float32", "float64",
             "complex64", "complex128"]
    samples = []
    for name in names:
        base = np.arange(24).astype(name).reshape(2, 3, 4)
        samples += [base, base[:, ::2, 1:], base.transpose(2, 0, 1), base[1, 2], base[0, 0, 0:0],
                    base[:, :0, ::-1],
                    np.asarray(base[0, 0, 0])]
    t = tvmfast_tensor_new()
    if t == NULL:
        raise MemoryError()
    try:
        for arr in samples:
            if tvmfast_numpy_describe(<PyObject*>arr, t) != 0:
                return False
            capsule = arr.__dlpack__()
            managed = <DLManagedTensor*>PyCapsule_GetPointer(capsule, "dltensor")
            dl = &managed.dl_tensor
            if (<char*>dl.data + dl.byte_offset != <char*>t.dl.data + t.dl.byte_offset
                    or dl.ndim != t.dl.ndim or dl.device.device_type != kDLCPU
                    or dl.dtype.code != t.dl.dtype.code or dl.dtype.bits != t.dl.dtype.bits
                    or dl.dtype.lanes != t.dl.dtype.lanes):
                return False
            for i in range(dl.ndim):
                if dl.shape[i] != t.dl.shape[i]:
                    return False
                if dl.strides != NULL and dl.strides[i] != t.dl.strides[i]:
                    return False
            del capsule
        # What is not read in C must say so (numpy's __dlpack__ refuses, or exports it otherwise).
        readonly = np.arange(4.0)
        readonly.flags.writeable = False
        for arr in (readonly, np.arange(4.0).astype(">f8"), np.arange(4.0).astype("longdouble"),
                    np.zeros(3, dtype=object)):
            if tvmfast_numpy_describe(<PyObject*>arr, t) != 1:
                return False
    finally:
        tvmfast_tensor_release(t)
    return True


cdef int convert_numpy(PyObject* obj, Py_ssize_t pos, TVMFFIAny* out, CallContext* ctx) except -1:
    """A numpy array: its fields read in C; what DLPack would export otherwise or refuse
    (read-only, byte-swapped, other dtypes, odd strides) through numpy's __dlpack__."""
    cdef TvmfastTensor* t
    cdef int described
    if numpy_read_checked is True or (numpy_read_checked is None and numpy_reading_agrees()):
        t = new_tensor(ctx)
        described = tvmfast_numpy_describe(obj, t)
        if described == 0:
            Py_INCREF(<object>obj)
            t.owner = obj
            out.type_index = kTVMFFITensor
            out.zero_padding = 0
            out.v_ptr = t
            if ((<uint64_t>t.dl.data) & ctx.align_mask) == 0:
                if ctx.cpu_pos < 0:
                    ctx.cpu_pos = <int32_t>pos
                return CONVERTED
            return note_tensor(ctx, t, pos, NULL, obj)
        if described < 0:
            raise MemoryError()
    return convert_dlpack(obj, pos, out, ctx)


cdef int convert_dlpack(PyObject* obj, Py_ssize_t pos, TVMFFIAny* out, CallContext* ctx) except -1:
    """A __dlpack__ producer, imported as tvm_ffi imports it for rt_mod; its errors (a
    consumed or misnamed capsule, an array DLPack cannot describe) keep their type and
    name the argument."""
    cdef TVMFFIObjectHandle handle = NULL
    cdef DLManagedTensor* managed
    cdef DLTensor* dl
    cdef TvmfastTensor* t
    try:
        capsule = (<object>obj).__dlpack__()
    except Exception as e:
        reraise_export_error(obj, pos, e)
    if not PyCapsule_IsValid(capsule, "dltensor"):
        raise_arg_error(ValueError, pos, f"{describe(obj)}.__dlpack__() did not give a 'dltensor' capsule "
                                         f"(a capsule can only be consumed once)")
    managed = <DLManagedTensor*>PyCapsule_GetPointer(capsule, "dltensor")
    if TVMFFITensorFromDLPack(managed, 0, 0, &handle) != 0:
        raise_ffi_error()
    # The tensor owns the managed tensor now: the capsule must not delete it.
    PyCapsule_SetDestructor(capsule, NULL)
    PyCapsule_SetName(capsule, "used_dltensor")
    ctx_hold_object(ctx, handle)
    dl = <DLTensor*>(<char*>handle + sizeof(TVMFFIObject))
    if is_misaligned(dl, ctx.align_mask):
        # An aligned copy of it, in a TvmfastTensor (the handle keeps the data for the call).
        t = new_tensor(ctx)
        t.dl = dl[0]
        pass_tensor(t, obj, out)
        return note_tensor(ctx, t, pos, NULL, obj)
    out.type_index = kTVMFFITensor
    out.zero_padding = 0
    out.v_ptr = handle
    return record_device(ctx, dl, pos, NULL, obj)
