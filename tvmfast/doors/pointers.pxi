# The raw-pointer escape hatch of a prepared function: call_ptrs (Python ints) and
# tvmfast_call_ptrs (C, without the GIL).  Shapes, strides, dtypes and devices are
# tvmfast's own snapshot of the prepared tensors taken at prepare(); the data
# pointers are the caller's, who vouches that they hold such tensors for the call.

cdef int take_snapshot(FrozenFunction self, uint64_t align_mask) except -1:
    """call_ptrs' metadata: each frozen tensor as it is now (shape, strides, dtype,
    device), in arrays of the FrozenFunction's own (freed with it)."""
    cdef CallContext ctx
    cdef int k, total = 0, off = 0
    cdef DLTensor* dl
    ctx_open_or_raise(&ctx, self.num_args, align_mask)
    try:
        if pack_frozen(self, &ctx) == LEFT_TO_TVM_FFI:
            return 0  # no snapshot: call_ptrs refuses
        for k in range(self.num_frozen_tensors):
            total += 2 * tensor_of(&ctx.packed[self.tensor_pos[k]]).ndim
        self.snapshot = <DLTensor*>calloc(max(self.num_frozen_tensors, 1), sizeof(DLTensor))
        self.snapshot_dims = <int64_t*>calloc(max(total, 1), sizeof(int64_t))
        if self.snapshot == NULL or self.snapshot_dims == NULL:
            raise MemoryError()
        for k in range(self.num_frozen_tensors):
            dl = tensor_of(&ctx.packed[self.tensor_pos[k]])
            self.snapshot[k] = dl[0]
            self.snapshot[k].data = NULL
            self.snapshot[k].byte_offset = 0
            memcpy(&self.snapshot_dims[off], dl.shape, dl.ndim * sizeof(int64_t))
            self.snapshot[k].shape = &self.snapshot_dims[off]
            off += dl.ndim
            if dl.strides != NULL:
                memcpy(&self.snapshot_dims[off], dl.strides, dl.ndim * sizeof(int64_t))
                self.snapshot[k].strides = &self.snapshot_dims[off]
            off += dl.ndim
        if ctx.device_type >= 0:
            check_devices(&ctx, self.num_args)
        self.snapshot_stream_api = ctx.stream_api
    finally:
        ctx_close(&ctx)
    return 0


cdef int fill_ptrs(FrozenFunction prepared, void** ptrs, CallContext* ctx) noexcept nogil:
    """ctx.packed = the prepared arguments with the k-th tensor at ptrs[k] (snapshot
    metadata, in ownerless tensor objects of ctx).  -1 when out of memory (nothing raised)."""
    cdef int k
    cdef TvmfastTensor* t
    cdef TVMFFIAny* slot
    memcpy(ctx.packed, prepared.template, prepared.num_args * sizeof(TVMFFIAny))
    for k in range(prepared.num_frozen_tensors):
        t = tvmfast_tensor_new()
        if t == NULL:
            return -1
        ctx.tensors[ctx.n_tensors] = t
        ctx.n_tensors += 1
        t.dl = prepared.snapshot[k]
        t.dl.data = ptrs[k]
        if tvmfast_tensor_own_dims(t) != 0:
            return -1
        slot = &ctx.packed[prepared.tensor_pos[k]]
        slot.type_index = kTVMFFITensor
        slot.zero_padding = 0
        slot.v_ptr = t
    return 0


cdef object call_with_pointers(FrozenFunction self, tuple ptrs):
    """FrozenFunction.call_ptrs: the addresses checked (ints, non-null, aligned), then the
    prepared call on them, on the producer's current stream as f(...) is."""
    cdef Py_ssize_t i, n = len(ptrs)
    cdef uint64_t address = 0
    cdef void* inline_ptrs[TVMFAST_STACK_ARGS]
    cdef void** cptrs = inline_ptrs
    cdef CallContext ctx
    if self.snapshot == NULL:
        raise_api_error(TypeError, "call_ptrs",
                        "needs a prepared function (f.prepare(...)) whose arguments are tensors, "
                        "int, float, bool, str or None")
    if n != self.num_frozen_tensors:
        raise_api_error(TypeError, "call_ptrs", f"expected {self.num_frozen_tensors} data pointers, got {n}")
    if n > TVMFAST_STACK_ARGS:
        cptrs = <void**>malloc(n * sizeof(void*))
        if cptrs == NULL:
            raise MemoryError()
    try:
        for i in range(n):
            p = <PyObject*>ptrs[i]
            if Py_TYPE(p) != &PyLong_Type:
                raise_api_error(TypeError, "call_ptrs", f"pointer #{i}: expected int, got {describe(p)}")
            try:
                address = PyLong_AsUnsignedLongLong(p)
            except OverflowError:
                raise_api_error(ValueError, "call_ptrs", f"pointer #{i} ({<object>p}) is not an address")
            if address == 0:
                raise_api_error(ValueError, "call_ptrs", f"pointer #{i} is null")
            if address & self.bound.target.align_mask:
                raise_api_error(ValueError, "call_ptrs",
                                f"pointer #{i} ({address:#x}) is not {self.bound.target.align_mask + 1}-byte aligned")
            cptrs[i] = <void*>address
        ctx_open_or_raise(&ctx, self.num_args, self.bound.target.align_mask)
        try:
            if fill_ptrs(self, cptrs, &ctx) != 0:
                raise MemoryError()
            ctx.devices_checked = True  # checked at prepare()
            for i in range(self.num_frozen_tensors):
                record_device(&ctx, &self.snapshot[i], self.tensor_pos[i], NULL, NULL)
            ctx.cpu_pos = -1
            ctx.stream_api = self.snapshot_stream_api
            return call_from_python(&self.bound.target, &ctx, <int32_t>self.num_args, False)
        finally:
            ctx_close(&ctx)
    finally:
        if cptrs != inline_ptrs:
            free(cptrs)


cdef int tvmfast_call_ptrs(FrozenFunction prepared, void** ptrs, int n) noexcept nogil:
    cdef CallContext ctx
    cdef TVMFFIAny result
    cdef int outcome
    if prepared.snapshot == NULL:
        TVMFFIErrorSetRaisedFromCStr("TypeError", "tvmfast_call_ptrs: not a prepared function")
        return -1
    if n != prepared.num_frozen_tensors:
        TVMFFIErrorSetRaisedFromCStr("TypeError", "tvmfast_call_ptrs: wrong number of data pointers")
        return -1
    if ctx_open(&ctx, prepared.num_args, prepared.bound.target.align_mask) != 0 or fill_ptrs(prepared, ptrs, &ctx) != 0:
        ctx_release(&ctx)
        TVMFFIErrorSetRaisedFromCStr("MemoryError", "tvmfast_call_ptrs: out of memory")
        return -1
    # Ownerless tensors, no stream, no allocator: invoke() needs no GIL for them.
    outcome = invoke(&prepared.bound.target, &ctx, prepared.num_args, &result, PyGILState_Check())
    if outcome == CALL_OK and result.type_index >= kTVMFFIStaticObjectBegin:
        TVMFFIObjectDecRef(result.v_ptr)
    return 0 if outcome == CALL_OK else -1
