# Native torch ops: the C kernel of an op made by as_torch_op (torch/op_entries.h says
# how torch reaches it).  One slot per op name, kept for the process (an op's schema is
# fixed once defined); what a slot calls (an OpTarget) is replaced when the op is
# registered again.  Past TVMFAST_MAX_OPS names, ops keep their Python kernel.
#
# The kernel runs without the GIL (torch's dispatcher released it; where the caller
# holds it, as AOTInductor's runner does, the call releases it around the function as
# a bound call does, unless the function was bound with release_gil=False).  It takes
# the C path when every tensor is a plain dense torch tensor read directly from its
# TensorImpl (torch_export.pxi) with no autograd metadata (so nothing requires grad, is
# a dual tensor or a differentiable view), on one device, aligned as the callee
# assumes; the tensors it writes have their version counters bumped as torch's
# in-place ops do, after every one of them was checked (an inference tensor written
# outside inference mode bumps none).  Anything else (and ops bound to a wrapper, or
# over OP_MAX_ARGS arguments) takes the op's Python kernel, called from here with the
# GIL and the very same tensors: its checks and errors are as_torch_op's.
#
# Lifetimes
# * Tensor handles: torch hands the kernel a new at::Tensor handle per tensor argument,
#   which the kernel owns.  On the C path each handle moves into the TvmfastTensor
#   passed for it (its `torch_handle`): released after the call, or by the tensor
#   object's deleter when the callee kept it (no GIL needed).  Inside an op call made from
#   Python, the release waits until the dispatcher has returned (memory/tensor.h says why).  On the Python path each
#   becomes a Python tensor through torch._C._aoti, which copies the at::Tensor (it
#   does not steal it, whatever its name says; the set-up checks which): the kernel
#   then releases its handle at once.  A handle not yet moved when a call fails is
#   released by the kernel.  Output handles are new ones made for the stack; torch
#   owns them.
# * Targets: an OpTarget is reference-counted: one reference for the slot that
#   publishes it, one per call in it.  A call takes its reference between two updates
#   of its slot's `entering` count; re-registration publishes the new target, waits
#   only until no thread is between loading the slot's target and taking its reference
#   (a few instructions, never a call: a call that re-registers its own op from inside
#   returns), then drops the slot's reference.  The last reference frees the target
#   (its function, BoundFunction and Python kernel references), under the GIL.
# * Fork: a child inherits the slots and targets.  Threads that were inside a call do
#   not exist in it: their `entering` counts are cleared (_after_fork_in_child), and
#   the targets they were in keep their references, so those few bytes are never
#   freed in the child.

cdef enum:
    OP_MAX_ARGS = 64
    OP_TENSOR = 0
    OP_INT = 1
    OP_FLOAT = 2
    OP_BOOL = 3


# What a slot calls; immutable once published, freed by its last reference.
ctypedef struct OpTarget:
    int refs                      # the slot's reference + one per call in it (atomic)
    TVMFFIObjectHandle function   # a reference of its own
    CallTarget* call_target       # the BoundFunction's: alignment, release_gil (read per call)
    PyObject* bound               # the BoundFunction (a reference of its own: owns call_target)
    bint python_only              # always the Python kernel (e.g. a bound wrapper)
    PyObject* python_kernel       # the op's Python kernel (a reference of its own)
    # The function's arguments: the op's, and for a functional op the outputs it allocates.
    int32_t n_call_args
    int32_t source[OP_MAX_ARGS]   # per function argument: its op argument, or -1 - (output index)
    int32_t n_allocated           # outputs allocated per call (the op returns them)
    int64_t* alloc_program        # how (op_allocate), or NULL (ours)


ctypedef struct OpSlot:
    int32_t n_args                # the op's arguments (torch's stack)
    int32_t n_returns
    int32_t n_mutated
    uint8_t kinds[OP_MAX_ARGS]    # per op argument
    int32_t mutated[OP_MAX_ARGS]  # op argument positions
    void* target                  # OpTarget*, swapped atomically
    int entering                  # threads between loading `target` and referencing it (atomic)
    void* library                 # torch::Library holding the kernel (for the process)
    PyObject* qualname            # "namespace::name" (a reference of its own)
    PyObject* outputs             # as_torch_op's check of a result: value -> output tensors (ours)


cdef OpSlot op_slots[TVMFAST_MAX_OPS]
cdef int n_op_slots = 0
cdef dict op_slot_of = {}                 # qualname -> slot
cdef str native_op_state = "not set up"   # for python -m tvmfast
cdef bint native_op_ready = False
cdef Py_ssize_t autograd_meta_offset = -1  # std::unique_ptr<AutogradMetaInterface> in TensorImpl
cdef uint64_t inference_keyset_mask = 0   # DispatchKeySet bits that every non-inference tensor has
cdef object steal_tensor = None           # torch._C._aoti.alloc_tensor_by_stealing_from_void_ptr
cdef bint steal_tensor_copies = True      # ... which copies the handle (so we release ours)
cdef object tensor_handle_of = None       # torch._C._aoti.unsafe_alloc_void_ptr_from_tensor
cdef const DLPackExchangeAPI* op_torch_api = NULL
cdef int selftest_attempts = 0
# Why the last call left the C path (OP_TAKEN_...), 0 when it took it; for tests and bug reports.
cdef int op_last_fallback = 0
cdef enum:
    OP_TAKEN_WRAPPER = 1
    OP_TAKEN_AUTOGRAD = 2
    OP_TAKEN_UNREAD = 3
    OP_TAKEN_MIXED_DEVICES = 4
    OP_TAKEN_INFERENCE = 5
    OP_TAKEN_MEMORY = 6
    OP_TAKEN_ALLOCATION = 7
OP_FALLBACK_REASONS = {0: "none", 1: "a wrapper's own call", 2: "a tensor that requires grad, or forward-mode AD",
                       3: "a tensor not read from TensorImpl, or misaligned", 4: "tensors on several devices",
                       5: "an inference tensor written outside inference mode", 6: "out of memory",
                       7: "an output its spec does not describe here (a dimension out of range, a negative "
                          "size, another device type) or torch did not allocate"}


def _native_op_last_fallback():
    """Why the last op call took the Python kernel ("none": it took the C path)."""
    return OP_FALLBACK_REASONS[op_last_fallback]


cdef int op_body(int k, uint64_t* stack, uint64_t n, uint64_t m, PyObject** exc) noexcept nogil:
    global op_last_fallback
    cdef OpSlot* slot = &op_slots[k]
    cdef OpTarget* target = op_target_enter(slot)
    cdef int rc
    if target.python_only:
        rc = 1
        op_last_fallback = OP_TAKEN_WRAPPER
    else:
        rc = op_call_c(slot, target, stack, exc)
        if rc != 1:
            op_last_fallback = 0  # this call took the C path
    if rc == 1:
        rc = op_call_python(slot, target, stack, exc)
    op_target_leave(target)
    return rc


cdef inline OpTarget* op_target_enter(OpSlot* slot) noexcept nogil:
    """The slot's current target, with a reference for this call."""
    cdef OpTarget* target
    tvmfast_atomic_add(&slot.entering, 1)
    target = <OpTarget*>tvmfast_load_ptr(&slot.target)
    tvmfast_atomic_add(&target.refs, 1)
    tvmfast_atomic_add(&slot.entering, -1)
    return target


cdef inline void op_target_leave(OpTarget* target) noexcept nogil:
    if tvmfast_atomic_add(&target.refs, -1) == 0:
        free_target_anywhere(target)


cdef void free_target_anywhere(OpTarget* target) noexcept nogil:
    """The last call out of a replaced target frees it (with the GIL, which it may not hold)."""
    if Py_IsInitialized():
        with gil:
            free_target(target)


cdef void free_target(OpTarget* target) noexcept:
    TVMFFIObjectDecRef(target.function)
    Py_XDECREF(target.bound)
    Py_XDECREF(target.python_kernel)
    free(target.alloc_program)
    free(target)


cdef inline bint op_eligible(OpSlot* slot, uint64_t* stack) noexcept nogil:
    """No tensor requires grad, and none is a dual tensor (a tensor with autograd metadata, such
    as a view or a parameter with requires_grad=False, is asked; most have none)."""
    cdef int32_t i
    cdef const char* impl
    for i in range(slot.n_args):
        if slot.kinds[i] == OP_TENSOR:
            impl = (<const char**><void*>stack[i])[0]
            if impl == NULL:
                return False
            if (<void**>(impl + autograd_meta_offset))[0] != NULL and not tvmfast_autograd_inert(impl):
                return False
    return True


cdef int op_call_c(OpSlot* slot, OpTarget* target, uint64_t* stack, PyObject** exc) noexcept nogil:
    """0 done; 1 not for the C path (nothing changed: take the Python kernel); -1 failed.
    Fills a call context from torch's stack (and, for a functional op, the outputs it
    allocates), then hands it to invoke() (the spine)."""
    cdef CallContext ctx
    cdef TvmfastTensor* t
    cdef TVMFFIAny* arg
    cdef TVMFFIAny result
    cdef int32_t i, j
    cdef int outcome
    cdef void* stream = NULL
    cdef void* allocated[OP_MAX_ARGS]
    if not op_eligible(slot, stack):
        return op_fall_back(NULL, OP_TAKEN_AUTOGRAD)
    if ctx_open(&ctx, target.n_call_args, target.call_target.align_mask) != 0:
        return op_fall_back(&ctx, OP_TAKEN_MEMORY)
    # Read every argument first: the Python kernel is still possible until the bumps.
    for i in range(target.n_call_args):
        j = target.source[i]
        if j < 0:
            continue  # an output, allocated below
        arg = &ctx.packed[i]
        arg.zero_padding = 0
        if slot.kinds[j] == OP_TENSOR:
            t = tvmfast_tensor_new()
            if t == NULL:
                return op_fall_back(&ctx, OP_TAKEN_MEMORY)
            ctx.tensors[ctx.n_tensors] = t
            ctx.n_tensors += 1
            if (tvmfast_torch_read_impl((<const char**><void*>stack[j])[0], &t.dl) != 0
                    or tvmfast_tensor_own_dims(t) != 0 or is_misaligned(&t.dl, ctx.align_mask)):
                return op_fall_back(&ctx, OP_TAKEN_UNREAD)
            arg.type_index = kTVMFFITensor
            arg.v_ptr = t
            if t.dl.device.device_type == kDLCPU:
                if ctx.cpu_pos < 0:
                    ctx.cpu_pos = i
            elif ctx.device_type < 0:
                ctx.device_type = t.dl.device.device_type
                ctx.device_id = t.dl.device.device_id
            elif t.dl.device.device_type != ctx.device_type or t.dl.device.device_id != ctx.device_id:
                return op_fall_back(&ctx, OP_TAKEN_MIXED_DEVICES)
        elif slot.kinds[j] == OP_INT:
            arg.type_index = kTVMFFIInt
            arg.v_int64 = <int64_t>stack[j]
        elif slot.kinds[j] == OP_FLOAT:
            arg.type_index = kTVMFFIFloat
            memcpy(&arg.v_float64, &stack[j], sizeof(double))
        else:
            arg.type_index = kTVMFFIBool
            arg.v_int64 = (stack[j] & 0xff) != 0
    if ctx.device_type >= 0 and ctx.cpu_pos >= 0:
        return op_fall_back(&ctx, OP_TAKEN_MIXED_DEVICES)  # the Python kernel raises tvmfast's error
    if target.n_allocated > 0 and op_allocate(slot, target, &ctx, stack, allocated) != 0:
        return op_fall_back(&ctx, OP_TAKEN_ALLOCATION)
    # Version counters of the tensors the op writes, as torch's in-place ops bump them:
    # every written tensor checked before any is bumped (an inference tensor written
    # outside inference mode: the Python kernel raises torch's error, nothing bumped).
    if slot.n_mutated > 0 and not tvmfast_inference_mode_enabled():
        for i in range(slot.n_mutated):
            if op_is_inference_tensor(<void*>stack[slot.mutated[i]]):
                op_drop_allocated(target, allocated)
                return op_fall_back(&ctx, OP_TAKEN_INFERENCE)
    for i in range(slot.n_mutated):
        if tvmfast_bump_version(<void*>stack[slot.mutated[i]]) != 0:
            op_drop_allocated(target, allocated)
            ctx_release(&ctx)
            return op_fail_python(exc)  # not expected after the check above
    # From here on the C path owns the call: the handles move into the tensor objects.
    for i in range(target.n_call_args):
        j = target.source[i]
        if j >= 0 and slot.kinds[j] == OP_TENSOR:
            (<TvmfastTensor*>ctx.packed[i].v_ptr).torch_handle = <void*>stack[j]
            stack[j] = 0
    ctx.exchange_api = op_torch_api  # tensors the callee allocates come from torch
    if ctx.device_type >= 0 and op_torch_api.current_work_stream != NULL:
        # torch's current stream for the device, made TVM's around the call.
        if op_torch_api.current_work_stream(<DLDeviceType>ctx.device_type, ctx.device_id, &stream) != 0:
            op_drop_allocated(target, allocated)
            ctx_release(&ctx)
            return op_fail_python(exc)
        ctx.stream = stream
        ctx.has_stream = True
    outcome = invoke(target.call_target, &ctx, target.n_call_args, &result, PyGILState_Check())
    if outcome == CALL_OK:
        if target.n_allocated > 0 and result.type_index == kTVMFFINone:
            for i in range(target.n_allocated):
                stack[i] = <uint64_t>allocated[i]  # torch owns them now
            return 0
        op_drop_allocated(target, allocated)
        return op_outputs(slot, &result, stack, exc)
    op_drop_allocated(target, allocated)
    if outcome == CALL_FFI_ERROR:
        return op_fail_ffi(exc)
    exc[0] = ctx.error  # CALL_PY_ERROR: our reference moves to the caller
    return -1


cdef inline void op_drop_allocated(OpTarget* target, void** allocated) noexcept nogil:
    cdef int32_t i
    for i in range(target.n_allocated):
        tvmfast_delete_aten_tensor(allocated[i])


# A functional op's allocation program, per output (int64 words):
#   position (function argument), like (function argument), dtype (stable C ABI code, or -1:
#   like's), item count, then per shape item one of
#     ALLOC_CONST value | ALLOC_DIM position index op-count (op constant)* | ALLOC_DIMS position start stop has-stop
#   (tvmfast.alloc's like / dim / dims, compiled by torch_op; op: ALLOC_ADD/SUB/MUL/FLOORDIV).
cdef enum:
    ALLOC_CONST = 0
    ALLOC_DIM = 1
    ALLOC_DIMS = 2
    ALLOC_ADD = 0
    ALLOC_SUB = 1
    ALLOC_MUL = 2
    ALLOC_FLOORDIV = 3


cdef inline int op_allocation_failed(int32_t n_made, void** allocated) noexcept nogil:
    cdef int32_t i
    for i in range(n_made):
        tvmfast_delete_aten_tensor(allocated[i])
    return 1


cdef int op_allocate(OpSlot* slot, OpTarget* target, CallContext* ctx, uint64_t* stack,
                     void** allocated) noexcept nogil:
    """Allocate a functional op's outputs (torch's allocator, the like tensor's device) and pass
    them: 0; or 1 (nothing left allocated) where the spec does not describe an output for these
    inputs (the Python kernel says why) or torch did not allocate (the Python kernel raises
    torch's error)."""
    cdef const int64_t* p = target.alloc_program
    cdef int64_t sizes[OP_MAX_ARGS]
    cdef int64_t strides[OP_MAX_ARGS]
    cdef int64_t value, start, stop, stride, c
    cdef int32_t k, item, n_items, ndim, op, n_ops, dtype, device_type, pos, like
    cdef const DLTensor* src
    cdef const DLTensor* like_dl
    cdef TvmfastTensor* t
    cdef void* handle
    for k in range(target.n_allocated):
        pos = <int32_t>p[0]
        like = <int32_t>p[1]
        dtype = <int32_t>p[2]
        n_items = <int32_t>p[3]
        p += 4
        ndim = 0
        for item in range(n_items):
            if p[0] == ALLOC_CONST:
                if ndim == OP_MAX_ARGS:
                    return op_allocation_failed(k, allocated)
                sizes[ndim] = p[1]
                ndim += 1
                p += 2
            elif p[0] == ALLOC_DIM:
                src = tensor_of(&ctx.packed[p[1]])
                value = p[2] + src.ndim if p[2] < 0 else p[2]
                n_ops = <int32_t>p[3]
                if value < 0 or value >= src.ndim or ndim == OP_MAX_ARGS:
                    return op_allocation_failed(k, allocated)
                value = src.shape[value]
                for op in range(n_ops):
                    if p[4 + 2 * op] == ALLOC_ADD:
                        value += p[5 + 2 * op]
                    elif p[4 + 2 * op] == ALLOC_SUB:
                        value -= p[5 + 2 * op]
                    elif p[4 + 2 * op] == ALLOC_MUL:
                        value *= p[5 + 2 * op]
                    else:  # Python's floor division by a positive constant (C's truncates)
                        c = p[5 + 2 * op]
                        value = value // c - (1 if (value % c != 0 and value < 0) else 0)
                if value < 0:
                    return op_allocation_failed(k, allocated)
                sizes[ndim] = value
                ndim += 1
                p += 4 + 2 * n_ops
            else:
                src = tensor_of(&ctx.packed[p[1]])
                start = p[2]
                stop = p[3] if p[4] else src.ndim
                # Python's slice rules for start:stop over range(ndim).
                start = max(start + src.ndim, 0) if start < 0 else min(start, src.ndim)
                stop = max(stop + src.ndim, 0) if stop < 0 else min(stop, src.ndim)
                while start < stop:
                    if ndim == OP_MAX_ARGS:
                        return op_allocation_failed(k, allocated)
                    sizes[ndim] = src.shape[start]
                    ndim += 1
                    start += 1
                p += 5
        stride = 1
        for item in range(ndim - 1, -1, -1):
            strides[item] = stride
            stride *= sizes[item] if sizes[item] > 0 else 1
        like_dl = tensor_of(&ctx.packed[like])
        if like_dl.device.device_type == kDLCPU:
            device_type = tvmfast_torch_op_api.device_type_cpu
        elif like_dl.device.device_type == kDLCUDA:
            device_type = tvmfast_torch_op_api.device_type_cuda
        else:
            return op_allocation_failed(k, allocated)
        if dtype < 0 and tvmfast_torch_op_api.get_dtype(<void*>stack[target.source[like]], &dtype) != 0:
            return op_allocation_failed(k, allocated)
        handle = NULL
        if tvmfast_torch_op_api.empty_strided(ndim, sizes, strides, dtype, device_type,
                                              like_dl.device.device_id, &handle) != 0 or handle == NULL:
            return op_allocation_failed(k, allocated)
        allocated[k] = handle
        # The tensor object passed for it holds a handle of its own.
        t = tvmfast_tensor_new()
        if t == NULL:
            return op_allocation_failed(k + 1, allocated)
        ctx.tensors[ctx.n_tensors] = t
        ctx.n_tensors += 1
        if tvmfast_torch_op_api.new_tensor_handle(handle, &t.torch_handle) != 0:
            t.torch_handle = NULL
            return op_allocation_failed(k + 1, allocated)
        if (tvmfast_torch_read_impl((<const char**>handle)[0], &t.dl) != 0
                or tvmfast_tensor_own_dims(t) != 0 or is_misaligned(&t.dl, ctx.align_mask)):
            return op_allocation_failed(k + 1, allocated)
        ctx.packed[pos].type_index = kTVMFFITensor
        ctx.packed[pos].zero_padding = 0
        ctx.packed[pos].v_ptr = t
    return 0


cdef inline int op_fall_back(CallContext* ctx, int reason) noexcept nogil:
    """The C path's one exit before the call: nothing changed, the Python kernel takes it."""
    global op_last_fallback
    if ctx != NULL:
        ctx_release(ctx)
    op_last_fallback = reason
    return 1


cdef inline bint op_is_inference_tensor(void* handle) noexcept nogil:
    """Whether the tensor behind a handle (an at::Tensor: its TensorImpl pointer first) is an
    inference tensor: one without the keys every other tensor has (learned at set-up)."""
    cdef const char* impl = (<const char**>handle)[0]
    return ((<uint64_t*>(impl + tvmfast_torch_layout.keyset))[0] & inference_keyset_mask) == 0


cdef int op_fail_ffi(PyObject** exc) noexcept with gil:
    """The TVM-FFI error of the failed call, as the Python exception tvm_ffi raises."""
    try:
        raise_ffi_error()
    except BaseException as err:
        Py_INCREF(err)
        exc[0] = <PyObject*>err
    return -1


cdef int op_fail_python(PyObject** exc) noexcept with gil:
    err = fetch_error() or RuntimeError("tvmfast: a torch call of the op's C kernel failed")
    Py_INCREF(err)
    exc[0] = <PyObject*>err
    return -1


cdef int op_outputs(OpSlot* slot, TVMFFIAny* result, uint64_t* stack, PyObject** exc) noexcept nogil:
    """Put the call's result on the stack as the op's outputs (consumes result)."""
    if slot.n_returns == 0 and result.type_index == kTVMFFINone:
        return 0
    return op_outputs_python(slot, result, stack, exc)


cdef int op_outputs_python(OpSlot* slot, TVMFFIAny* result, uint64_t* stack, PyObject** exc) noexcept with gil:
    try:
        value = convert_result(result, op_torch_api)
        op_store_outputs(slot, value, stack)
    except BaseException as err:
        Py_INCREF(err)
        exc[0] = <PyObject*>err
        return -1
    return 0


cdef int op_store_outputs(OpSlot* slot, object value, uint64_t* stack) except -1:
    """The op's outputs (torch tensors) as new tensor handles on the stack; anything else goes
    through the op's own output check (as_torch_op's: it converts or refuses)."""
    cdef Py_ssize_t i
    tensor_type = <object>torch_tensor_type
    if slot.n_returns == 0 and value is None:
        return 0
    if slot.n_returns == 1:
        outs = (value,)
    else:
        outs = tuple(value) if isinstance(value, _CContainerBase) and len(value) == slot.n_returns else None
    if slot.n_returns == 0 or outs is None or not all(type(o) is tensor_type for o in outs):
        outs = (<object>slot.outputs)(value)
    handles = [tensor_handle_of(o) for o in outs]  # all made before any is stored
    for i in range(len(handles)):
        stack[i] = <uint64_t>PyCapsule_GetPointer(handles[i], NULL)
    return 0


cdef int op_call_python(OpSlot* slot, OpTarget* target, uint64_t* stack, PyObject** exc) noexcept with gil:
    """The op's Python kernel on the same tensors (the handles move into Python tensors)."""
    cdef int32_t i
    args = []
    try:
        for i in range(slot.n_args):
            if slot.kinds[i] == OP_TENSOR:
                args.append(steal_tensor(PyCapsule_New(<void*>stack[i], NULL, NULL)))
                if steal_tensor_copies:
                    tvmfast_delete_aten_tensor(<void*>stack[i])  # the Python tensor holds its own copy
                stack[i] = 0
            elif slot.kinds[i] == OP_INT:
                args.append(<int64_t>stack[i])
            elif slot.kinds[i] == OP_FLOAT:
                args.append((<double*>&stack[i])[0])
            else:
                args.append((stack[i] & 0xff) != 0)
        value = (<object>target.python_kernel)(*args)
        del args
        op_store_outputs(slot, value, stack)
    except BaseException as err:
        # Handles not yet moved into Python tensors are released here.
        for i in range(slot.n_args):
            if slot.kinds[i] == OP_TENSOR and stack[i] != 0:
                tvmfast_delete_aten_tensor(<void*>stack[i])
                stack[i] = 0
        Py_INCREF(err)
        exc[0] = <PyObject*>err
        return -1
    return 0
