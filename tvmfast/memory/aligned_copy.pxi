# Misaligned CPU data, around a call: a function that assumes aligned data (bind's
# `alignment`, 64 for a TVM module's functions) gets a misaligned CPU tensor as an
# aligned copy, only where the copy is exact.  The rule is stated once, in
# memory/aligned_copy.h; here is its protocol: note_tensor marks or refuses a tensor
# while the door converts it, invoke() makes the copies (copy_misaligned) right before
# the call and settles them (settle_misaligned) right after it, and the door raises for
# a copy the callee kept (raise_kept_copy).

cdef enum:
    # Data alignment TVM kernels with default buffers assume (TVM's kAllocAlignment).
    DEFAULT_ALIGNMENT = 64
    # The largest alignment bind() takes (a page).
    MAX_ALIGNMENT = 4096


cdef int raise_misaligned(DLTensor* dl, Py_ssize_t pos, uint64_t alignment) except -1:
    raise_arg_error(
        ValueError, pos,
        f"{device_str(dl.device.device_type, dl.device.device_id)} data address "
        f"{<uint64_t>dl.data + dl.byte_offset:#x} is not {alignment}-byte aligned. TVM kernels built "
        f"with default buffers assume aligned data and may crash on it (rt_mod does); for kernels "
        f"whose buffers use offset_factor=1, bind(..., alignment=1)")


cdef inline bint is_misaligned(DLTensor* dl, uint64_t align_mask) noexcept nogil:
    """Data not aligned as the callee assumes (an empty tensor has no data to misread)."""
    cdef int i
    if ((<uint64_t>dl.data + dl.byte_offset) & align_mask) == 0:
        return False
    for i in range(dl.ndim):
        if dl.shape[i] == 0:
            return False
    return True


cdef int note_tensor(CallContext* ctx, TvmfastTensor* t, Py_ssize_t pos,
                     const DLPackExchangeAPI* api, PyObject* obj) except -1:
    """A tensor tvmfast passes: check its data alignment, record its device.

    A misaligned CPU tensor (numpy arrays are 16-byte aligned, views start anywhere)
    is marked to be passed through an aligned copy (memory/aligned_copy.h states the
    rule); the copy itself is made by copy_misaligned, once every argument is known.
    What the copy could not make right is refused here."""
    cdef uintptr_t lo, hi
    if is_misaligned(&t.dl, ctx.align_mask):
        if t.dl.device.device_type != kDLCPU:
            raise_misaligned(&t.dl, pos, ctx.align_mask + 1)
        refusal = tvmfast_copy_refusal(&t.dl)
        if refusal != 0:
            why = ("its elements lie far apart (a copy would span the memory between them)" if refusal == 2
                   else "it is a strided view of a sub-byte type or of over 64 dimensions")
            raise_arg_error(
                ValueError, pos,
                f"data address {<uint64_t>t.dl.data + t.dl.byte_offset:#x} is not {ctx.align_mask + 1}-byte "
                f"aligned, and {why}, so tvmfast does not pass it as an aligned copy. Pass t.contiguous() "
                f"(write results back yourself), or bind(..., alignment=1) if the kernel's buffers take "
                f"any address (offset_factor=1)")
        tvmfast_byte_range(&t.dl, &lo, &hi)
        if obj != NULL and not storage_holds_elements(<object>obj, lo, hi):
            raise_arg_error(
                ValueError, pos,
                f"{describe(obj)}'s storage does not hold its elements (was it resized?), and its data "
                f"address is not {ctx.align_mask + 1}-byte aligned: there is nothing to copy")
        if api != NULL and obj != NULL and t.source_keeper == NULL:
            # The producer's own reference to the memory the copy is taken from and written
            # back to: it stays allocated even if Python code during the call (a callback)
            # gives the tensor other storage.
            if api.managed_tensor_from_py_object_no_sync(<void*>obj, &t.source_keeper) != 0:
                t.source_keeper = NULL
                reraise_export_error(obj, pos)
        t.source = <char*>t.dl.data + t.dl.byte_offset  # marks it: copied in copy_misaligned
        ctx.n_scratch += 1
    return record_device(ctx, &t.dl, pos, api, obj)


cdef Py_ssize_t position_of(TVMFFIAny* packed, Py_ssize_t n, void* tensor) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(n):
        if packed[k].type_index == kTVMFFITensor and packed[k].v_ptr == tensor:
            return k
    return -1


cdef TvmfastTensor* marked_tensor(CallContext* ctx, void* handle) noexcept:
    """The TvmfastTensor of ctx behind handle if it is marked for an aligned copy, else NULL."""
    cdef int32_t i
    for i in range(ctx.n_tensors):
        if <void*>ctx.tensors[i] == handle:
            return ctx.tensors[i] if ctx.tensors[i].source != NULL else NULL
    return NULL


cdef int copy_misaligned(CallContext* ctx, Py_ssize_t n) except -1:
    """Right before the call: give each marked tensor its aligned copy.  Tensors whose bytes
    interleave without touching need nothing; the same elements passed in several slots (an
    in-place k(x, x)) share one copy, as they share memory for rt_mod; any other overlap
    with a tensor argument would be broken by a copy: refused."""
    cdef int32_t i
    cdef Py_ssize_t k, pos
    cdef TvmfastTensor* t
    cdef TvmfastTensor* twin
    cdef DLTensor* other
    cdef uintptr_t lo, hi, olo, ohi
    cdef TVMFFIAny* packed = ctx.packed
    for i in range(ctx.n_tensors):
        t = ctx.tensors[i]
        if t.source == NULL or t.scratch != NULL:
            continue
        tvmfast_byte_range(&t.dl, &lo, &hi)
        pos = position_of(packed, n, t)
        for k in range(n):
            if k == pos or packed[k].type_index != kTVMFFITensor or packed[k].v_ptr == <void*>t:
                continue
            other = tensor_of(&packed[k])
            if other.device.device_type != kDLCPU:
                continue
            tvmfast_byte_range(other, &olo, &ohi)
            if not (olo < ohi and lo < ohi and olo < hi) or tvmfast_interleaved(&t.dl, other):
                continue
            twin = marked_tensor(ctx, packed[k].v_ptr)
            if twin != NULL and ctx.objects != NULL and tvmfast_same_elements(&t.dl, &twin.dl):
                # Slot k passes t itself (one more reference, ours, given back with ctx.objects).
                twin.source = NULL
                TVMFFIObjectIncRef(<TVMFFIObjectHandle>t)
                ctx_hold_object(ctx, <TVMFFIObjectHandle>t)
                t.shared_slots += 1
                packed[k].v_ptr = t
                continue
            raise_arg_error(
                ValueError, pos,
                f"shares memory with argument #{k}, and its data address {lo:#x} is not "
                f"{ctx.align_mask + 1}-byte aligned: an aligned copy would not alias argument #{k}. "
                f"Pass aligned tensors (e.g. a clone; torch allocates 64-byte aligned memory), or "
                f"bind(..., alignment=1) if the kernel's buffers take any address (offset_factor=1)")
    for i in range(ctx.n_tensors):
        t = ctx.tensors[i]
        if t.source != NULL and t.scratch == NULL:
            if tvmfast_tensor_copy_in(t, ctx.align_mask + 1) != 0:
                raise MemoryError()
    return 0


cdef Py_ssize_t settle_misaligned(CallContext* ctx, Py_ssize_t n, TVMFFIAny* result) noexcept nogil:
    """Right after the call, success or failure: write back what the callee changed in
    each aligned copy.  A copy that is the call's result and nothing else is made to
    describe the caller's memory again (an identity function returns the caller's
    tensor).  Returns the position of an argument the callee kept otherwise (what it
    keeps does not alias the caller's tensor: the call must raise), else -1."""
    cdef int32_t i
    cdef Py_ssize_t kept = -1
    cdef TvmfastTensor* t
    cdef uint64_t foreign
    for i in range(ctx.n_tensors):
        t = ctx.tensors[i]
        if t.scratch == NULL or t.source == NULL:
            continue
        tvmfast_tensor_write_back(t)
        foreign = tvmfast_tensor_foreign_refs(t)
        if foreign == 0:
            continue
        if foreign == 1 and result.type_index == kTVMFFITensor and result.v_ptr == <void*>t:
            tvmfast_tensor_point_back(t)
        elif kept < 0:
            kept = position_of(ctx.packed, n, t)
    return kept


cdef int raise_kept_copy(Py_ssize_t pos, uint64_t alignment, object cause) except -1:
    raise_arg_error(
        ValueError, pos,
        f"the function kept this tensor (returned it, stored it or made a view of it), but its data "
        f"is not {alignment}-byte aligned and it was passed as an aligned copy: what the function "
        f"keeps would not alias your tensor. Its writes during the call were written back. Pass "
        f"aligned data (e.g. a clone), or bind(..., alignment=1) if the function takes any address",
        cause)
