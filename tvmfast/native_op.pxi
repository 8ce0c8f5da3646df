# Native torch ops: the C kernel of an op made by as_torch_op (tvmfast_torch_op.h says
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
#   object's deleter when the callee kept it (no GIL needed).  On the Python path each
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


ctypedef struct OpSlot:
    int32_t n_args
    int32_t n_returns
    int32_t n_mutated
    uint8_t kinds[OP_MAX_ARGS]
    int32_t mutated[OP_MAX_ARGS]
    void* target                  # OpTarget*, swapped atomically
    int entering                  # threads between loading `target` and referencing it (atomic)
    void* library                 # torch::Library holding the kernel (for the process)
    PyObject* qualname            # "namespace::name" (a reference of its own)


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
# Why the last call that left the C path left it (OP_TAKEN_...), for tests and bug reports.
cdef int op_last_fallback = 0
cdef enum:
    OP_TAKEN_WRAPPER = 1
    OP_TAKEN_AUTOGRAD = 2
    OP_TAKEN_UNREAD = 3
    OP_TAKEN_MIXED_DEVICES = 4
    OP_TAKEN_INFERENCE = 5
    OP_TAKEN_MEMORY = 6
OP_FALLBACK_REASONS = {0: "none", 1: "a wrapper's own call", 2: "a tensor that requires grad, or forward-mode AD",
                       3: "a tensor not read from TensorImpl, or misaligned", 4: "tensors on several devices",
                       5: "an inference tensor written outside inference mode", 6: "out of memory"}


def _native_op_last_fallback():
    """Why the last op call that took the Python kernel took it."""
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
    """0 done; 1 not for the C path (nothing changed: take the Python kernel); -1 failed."""
    cdef CallContext ctx
    cdef TvmfastTensor* t
    cdef TVMFFIAny* arg
    cdef TVMFFIAny result
    cdef int32_t i
    cdef int ret
    cdef void* stream = NULL
    global op_last_fallback
    if not op_eligible(slot, stack):
        op_last_fallback = OP_TAKEN_AUTOGRAD
        return 1
    if ctx_open(&ctx, slot.n_args, target.call_target.align_mask) != 0:
        op_last_fallback = OP_TAKEN_MEMORY
        return 1
    # Read every argument first: the Python kernel is still possible until the bumps.
    for i in range(slot.n_args):
        arg = &ctx.packed[i]
        arg.zero_padding = 0
        if slot.kinds[i] == OP_TENSOR:
            t = tvmfast_tensor_new()
            if t == NULL:
                ctx_release(&ctx)
                op_last_fallback = OP_TAKEN_MEMORY
                return 1
            ctx.tensors[ctx.n_tensors] = t
            ctx.n_tensors += 1
            if (tvmfast_torch_read_impl((<const char**><void*>stack[i])[0], &t.dl) != 0
                    or tvmfast_tensor_own_dims(t) != 0 or is_misaligned(&t.dl, ctx.align_mask)):
                ctx_release(&ctx)
                op_last_fallback = OP_TAKEN_UNREAD
                return 1
            arg.type_index = kTVMFFITensor
            arg.v_ptr = t
            if t.dl.device.device_type == kDLCPU:
                if ctx.cpu_pos < 0:
                    ctx.cpu_pos = i
            elif ctx.device_type < 0:
                ctx.device_type = t.dl.device.device_type
                ctx.device_id = t.dl.device.device_id
            elif t.dl.device.device_type != ctx.device_type or t.dl.device.device_id != ctx.device_id:
                ctx_release(&ctx)
                op_last_fallback = OP_TAKEN_MIXED_DEVICES
                return 1
        elif slot.kinds[i] == OP_INT:
            arg.type_index = kTVMFFIInt
            arg.v_int64 = <int64_t>stack[i]
        elif slot.kinds[i] == OP_FLOAT:
            arg.type_index = kTVMFFIFloat
            memcpy(&arg.v_float64, &stack[i], sizeof(double))
        else:
            arg.type_index = kTVMFFIBool
            arg.v_int64 = (stack[i] & 0xff) != 0
    if ctx.device_type >= 0 and ctx.cpu_pos >= 0:
        ctx_release(&ctx)
        op_last_fallback = OP_TAKEN_MIXED_DEVICES
        return 1  # mixed devices: the Python kernel raises tvmfast's error
    # Version counters of the tensors the op writes, as torch's in-place ops bump them:
    # every written tensor checked before any is bumped (an inference tensor written
    # outside inference mode: the Python kernel raises torch's error, nothing bumped).
    if slot.n_mutated > 0 and not tvmfast_inference_mode_enabled():
        for i in range(slot.n_mutated):
            if op_is_inference_tensor(<void*>stack[slot.mutated[i]]):
                ctx_release(&ctx)
                op_last_fallback = OP_TAKEN_INFERENCE
                return 1
    for i in range(slot.n_mutated):
        if tvmfast_bump_version(<void*>stack[slot.mutated[i]]) != 0:
            ret = op_fail_python(exc)  # not expected after the check above
            ctx_release(&ctx)
            return ret
    # From here on the C path owns the call: the handles move into the tensor objects.
    ret = 0
    for i in range(slot.n_args):
        if slot.kinds[i] == OP_TENSOR:
            (<TvmfastTensor*>ctx.packed[i].v_ptr).torch_handle = <void*>stack[i]
            stack[i] = 0
    ctx.exchange_api = op_torch_api  # tensors the callee allocates come from torch
    if ctx.device_type >= 0 and op_torch_api.current_work_stream != NULL:
        # torch's current stream for the device, made TVM's around the call.
        if op_torch_api.current_work_stream(<DLDeviceType>ctx.device_type, ctx.device_id, &stream) == 0:
            ctx.stream = stream
            ctx.has_stream = True
        else:
            ret = op_fail_python(exc)
    result.type_index = kTVMFFINone
    result.zero_padding = 0
    result.v_int64 = 0
    if ret == 0:
        if ctx_enter(&ctx) != 0:
            ret = op_fail_ffi(exc)
    if ret == 0:
        ret = op_invoke(target, &ctx, slot.n_args, &result)
        ctx_exit(&ctx)
        ret = op_fail_ffi(exc) if ret != 0 else op_outputs(slot, &result, stack, exc)
    ctx_release(&ctx)
    return ret


cdef inline bint op_is_inference_tensor(void* handle) noexcept nogil:
    """Whether the tensor behind a handle (an at::Tensor: its TensorImpl pointer first) is an
    inference tensor: one without the keys every other tensor has (learned at set-up)."""
    cdef const char* impl = (<const char**>handle)[0]
    return ((<uint64_t*>(impl + tvmfast_torch_layout.keyset))[0] & inference_keyset_mask) == 0


cdef inline int op_invoke(OpTarget* target, CallContext* ctx, int32_t n_args, TVMFFIAny* result) noexcept nogil:
    """TVMFFIFunctionCall with the GIL as the bound function says now (f.release_gil), whether
    or not torch's caller holds it (the dispatcher releases it; AOTInductor's runner does not)."""
    cdef PyThreadState* saved
    cdef int ret
    if target.call_target.release_gil:
        if PyGILState_Check():
            saved = PyEval_SaveThread()
            ret = TVMFFIFunctionCallFromTvmfast(target.function, ctx.packed, n_args, result)
            PyEval_RestoreThread(saved)
            return ret
        return TVMFFIFunctionCallFromTvmfast(target.function, ctx.packed, n_args, result)
    if PyGILState_Check():
        return TVMFFIFunctionCallFromTvmfast(target.function, ctx.packed, n_args, result)
    with gil:
        ret = TVMFFIFunctionCallFromTvmfast(target.function, ctx.packed, n_args, result)
    return ret


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
    """The op's outputs (torch tensors) as new tensor handles on the stack; anything else is
    checked (and refused) as the Python kernel does."""
    cdef Py_ssize_t i
    tensor_type = <object>torch_tensor_type
    if slot.n_returns == 0:
        if value is not None:
            from tvmfast import torch_op
            torch_op._refuse_result(op_qualname(slot), value)
        return 0
    if slot.n_returns == 1:
        outs = (value,)
    else:
        outs = tuple(value) if isinstance(value, _CContainerBase) and len(value) == slot.n_returns else None
    if outs is None or not all(type(o) is tensor_type for o in outs):
        from tvmfast import torch_op
        outs = torch_op._result_converter(op_qualname(slot), slot.n_returns)(value)
        if slot.n_returns == 1:
            outs = (outs,)
    handles = [tensor_handle_of(o) for o in outs]  # all made before any is stored
    for i in range(len(handles)):
        stack[i] = <uint64_t>PyCapsule_GetPointer(handles[i], NULL)
    return 0


cdef inline object op_qualname(OpSlot* slot):
    return <object>slot.qualname


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


# ---------------------------------------------------------------------------
# Set-up and registration (under the GIL)
# ---------------------------------------------------------------------------
def _native_op_setup():
    """Find torch's functions, learn where TensorImpl keeps its autograd metadata, and
    self-test a C kernel's error path, once (a one-time set-up, once.pxi).  Returns
    whether native ops are on."""
    if not setup_torch_direct_export():
        return False  # called from inside torch's set-up: this op keeps its Python kernel
    native_op_setup.run(_run_native_op_setup)
    return native_op_ready


def _reset_native_op_setup():
    global native_op_state, native_op_ready
    native_op_state = "not set up"
    native_op_ready = False


cdef OneTimeSetup native_op_setup = one_time_setup(_reset_native_op_setup)


def _run_native_op_setup():
    global native_op_state
    from tvmfast import _torch
    global native_op_ready
    native_op_state = "off (set-up failed)"
    torch = sys.modules["torch"]
    try:
        with _torch.setup_scope(torch):
            native_op_state = _native_op_setup_in_scope(torch, _torch)
    except Exception as exc:  # every op keeps its Python kernel
        native_op_ready = False
        native_op_state = f"off (set-up failed: {type(exc).__name__}: {exc})"


cdef str _native_op_setup_in_scope(torch, _torch):
    """The set-up itself; returns the state line."""
    global native_op_ready, autograd_meta_offset, steal_tensor, steal_tensor_copies, tensor_handle_of
    global op_torch_api, inference_keyset_mask
    if os.environ.get("TVMFAST_NATIVE_OP", "1") == "0":
        return "off (TVMFAST_NATIVE_OP=0)"
    if not tvmfast_torch_layout.enabled:
        return "off (torch tensors are not read from TensorImpl here)"
    found, reason = _torch.find_op_symbols()
    if found is None:
        return f"off ({reason})"
    aoti = getattr(torch._C, "_aoti", None)
    steal_tensor = getattr(aoti, "alloc_tensor_by_stealing_from_void_ptr", None)
    tensor_handle_of = getattr(aoti, "unsafe_alloc_void_ptr_from_tensor", None)
    if steal_tensor is None or tensor_handle_of is None:
        return "off (torch._C._aoti has no tensor handle conversions)"
    op_torch_api = exchange_api_of(torch.Tensor, 0)
    if op_torch_api == NULL:
        return "off (torch has no DLPack C exchange API)"
    offset = _learn_autograd_meta(torch)
    if offset < 0:
        return "off (TensorImpl's autograd metadata not found)"
    autograd_meta_offset = offset
    mask = _learn_inference_keyset_mask(torch)
    if mask == 0:
        return "off (the DispatchKeySet bits of inference tensors not found)"
    inference_keyset_mask = mask
    tvmfast_set_torch_op_api(found["library_init_impl"], found["library_impl"], found["delete_library"],
                             found["bump_version"], found["delete_tensor"], found["requires_grad"],
                             found["try_get_forward_level"], found["inference_mode_enabled"])
    copies = _learn_steal_copies(torch)
    if copies is None:
        return "off (torch._C._aoti's tensor handle conversion neither copies nor takes the handle)"
    steal_tensor_copies = copies
    tvmfast_set_op_body(op_body)
    native_op_ready = True
    reason = _native_op_selftest(torch)
    if reason is not None:
        native_op_ready = False
        return f"off (self-test: {reason})"
    return "on (C kernels through torch's stable C ABI, self-tested)"


cdef Py_ssize_t _learn_autograd_meta(torch) except -2:
    """The word of TensorImpl that is NULL on a plain tensor and set once it requires grad
    (the autograd metadata pointer), checked on several tensors; -1 if not found."""
    cdef Py_ssize_t k
    samples = [torch.zeros(3), torch.ones(2, 3), torch.ones(2, dtype=torch.int64)]  # no views: they carry it

    def word(t, Py_ssize_t off):
        impl = <const char*><uintptr_t>tvmfast_read_ptr(<PyObject*>t, tvmfast_thpvariable_tensor_offset)
        return (<uint64_t*>(impl + off))[0]

    before = {k: [word(t, k) for t in samples] for k in range(8, tvmfast_torch_layout.keyset, 8)}
    for t in samples:
        if t.is_floating_point():
            t.requires_grad_()
    grads = [t for t in samples if t.requires_grad]
    found = [k for k, words in before.items()
             if all(w == 0 for w in words) and all(word(t, k) != 0 for t in grads)
             and all(word(t, k) == 0 for t in samples if not t.requires_grad)]
    if len(found) != 1:
        return -1
    # A view in grad mode carries it too; an inference tensor does not.
    with torch.inference_mode():
        plain = torch.zeros(4)
    if word(samples[0].detach()[1:], found[0]) == 0 or word(plain, found[0]) != 0:
        return -1
    return found[0]


cdef uint64_t _learn_inference_keyset_mask(torch) except? 0:
    """The DispatchKeySet bits that every tensor but an inference tensor has (autograd and
    ADInplaceOrView), checked against torch's is_inference() on several tensors; 0 if not
    found."""
    cdef uint64_t mask
    normal = [torch.zeros(3), torch.ones(2, 3, dtype=torch.int64)[1:], torch.zeros(2).requires_grad_(),
              torch.zeros(4, dtype=torch.float16).t(), torch.zeros(2, dtype=torch.bool)]
    with torch.inference_mode():
        inference = [torch.zeros(3), torch.ones(2, 3, dtype=torch.int64)[1:], torch.zeros(4, dtype=torch.float16),
                     torch.zeros(2, dtype=torch.bool)]
        inference_view = inference[0][1:]
        inside = torch.zeros(2)[1:]
    # (Views made in inference mode of a normal tensor are normal tensors.)
    with torch.inference_mode():
        normal_view = normal[0][1:]
    samples = normal + inference + [inference_view, inside, normal_view]

    def keyset(t):
        return tvmfast_torch_keyset(<PyObject*>t, tvmfast_torch_layout.keyset)

    mask = keyset(normal[0]) ^ keyset(inference[0])
    if mask == 0 or any(keyset(t) & mask != mask for t in normal):
        return 0
    for t in samples:
        if ((keyset(t) & mask) == 0) != t.is_inference() or ((keyset(t) & mask) not in (0, mask)):
            return 0
    return mask


cdef object _learn_steal_copies(torch):
    """Whether torch._C._aoti's "stealing" conversion copies the at::Tensor of a handle (then
    the caller still owns the handle) or takes it over; None if neither shows."""
    t = torch.zeros(2)
    before = t._use_count()
    handle = tensor_handle_of(t)  # a new at::Tensor: one more use
    made = steal_tensor(handle)
    after = t._use_count()
    if made is not t:
        return None
    if after == before + 1:
        tvmfast_delete_aten_tensor(PyCapsule_GetPointer(handle, NULL))  # still ours
        return True
    return False if after == before else None


cdef object _native_op_selftest(torch):
    """Register a probe op whose function raises, call it, and check the exception that
    reaches Python is the one raised (type, message); also a call that succeeds."""
    global selftest_attempts
    marker = "tvmfast native op self-test"

    def probe(x, y):
        if y.numel() == 0:
            raise KeyError(marker)

    fn = tvm_ffi.convert(probe)
    # A fresh name per attempt: a fork child may run the set-up again after a thread that
    # does not exist in it left a probe half-registered.
    name = f"probe{selftest_attempts}"
    selftest_attempts += 1
    qualname = f"tvmfast_selftest::{name}"
    lib = torch.library.Library("tvmfast_selftest", "FRAGMENT")
    lib.define(f"{name}(Tensor x, Tensor(a!) y) -> ()")
    op = getattr(torch.ops.tvmfast_selftest, name)
    try:
        if not register_native_op(qualname, "tvmfast_selftest", name, fn, None, False,
                                  [OP_TENSOR, OP_TENSOR], [1], 0, None):
            return "no slot left for the probe op"
        x = torch.zeros(2)
        y = torch.zeros(2)
        version = y._version
        op(x, y)
        if y._version != version + 1:
            return "the version counter was not bumped"
        try:
            op(x, torch.zeros(0))
        except KeyError as err:
            if marker not in str(err):
                return f"the error reached Python as {err!r}"
        except BaseException as err:
            return f"the error reached Python as {type(err).__name__}: {err}"
        else:
            return "the error did not reach Python"
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    finally:
        lib._destroy()
    return None


cdef bint register_native_op(str qualname, str namespace, str op_name, object function, object bound,
                             bint python_only, list kinds, list mutated, int n_returns,
                             object python_kernel) except -1:
    """Make qualname's kernel the C one (a slot for the process), calling function as bound
    (a BoundFunction: alignment and release_gil; None: no alignment, GIL released); or, if it
    has one already, point its slot at function.  False when no slot is left (the op keeps
    its Python kernel).  The previous target is freed by its last call (see the top)."""
    global n_op_slots
    cdef int k
    cdef OpSlot* slot
    cdef OpTarget* target
    cdef OpTarget* old
    cdef void* library = NULL
    cdef int i
    k = op_slot_of.get(qualname, -1)
    if k < 0:
        if n_op_slots == TVMFAST_MAX_OPS:
            return False
        k = n_op_slots
    slot = &op_slots[k]
    target = <OpTarget*>calloc(1, sizeof(OpTarget))
    if target == NULL:
        raise MemoryError()
    target.refs = 1
    target.function = <TVMFFIObjectHandle><uint64_t>function.__chandle__()
    TVMFFIObjectIncRef(target.function)
    if bound is None:
        bound = BoundFunction(function, alignment=1, release_gil=True)
    target.bound = <PyObject*>bound
    Py_INCREF(bound)
    target.call_target = &(<BoundFunction>bound).target
    target.python_only = python_only
    target.python_kernel = <PyObject*>python_kernel
    Py_INCREF(python_kernel)
    if k == n_op_slots:
        slot.n_args = len(kinds)
        slot.n_returns = n_returns
        slot.n_mutated = len(mutated)
        for i in range(len(kinds)):
            slot.kinds[i] = kinds[i]
        for i in range(len(mutated)):
            slot.mutated[i] = mutated[i]
        slot.entering = 0
        slot.target = target
        ns = namespace.encode()
        if tvmfast_torch_op_api.library_init_impl(ns, b"CompositeExplicitAutograd", b"tvmfast", 0, &library) != 0:
            free_target(target)
            raise RuntimeError(f"tvmfast: torch refused a library for {qualname}")
        if tvmfast_torch_op_api.library_impl(library, op_name.encode(), tvmfast_op_entry_at(k)) != 0:
            tvmfast_torch_op_api.delete_library(library)
            free_target(target)
            raise RuntimeError(f"tvmfast: torch refused the C kernel of {qualname}")
        slot.library = library
        slot.qualname = <PyObject*>qualname
        Py_INCREF(qualname)
        op_slot_of[qualname] = k
        n_op_slots += 1
        return True
    old = <OpTarget*>tvmfast_load_ptr(&slot.target)
    tvmfast_store_ptr(&slot.target, target)
    with nogil:
        # Only threads between loading the old target and referencing it; never a call.
        while tvmfast_atomic_load(&slot.entering) != 0:
            sched_yield()
    if tvmfast_atomic_add(&old.refs, -1) == 0:
        free_target(old)
    return True


cdef void native_op_after_fork_in_child() noexcept:
    """No thread of the parent but the one that forked is in this process: none is entering a
    slot (see the top)."""
    cdef int k
    for k in range(n_op_slots):
        tvmfast_atomic_store(&op_slots[k].entering, 0)


def _native_op_register(qualname, namespace, op_name, bound, kinds, mutated, n_returns, python_kernel):
    """as_torch_op's C kernel for qualname (see torch_op.py); False where this op keeps its
    Python kernel only (native ops off, too many arguments, an argument kind not taken, no
    slot left)."""
    cdef BoundFunction fn = <BoundFunction?>bound
    if not _native_op_setup() or len(kinds) > OP_MAX_ARGS:
        return False
    codes = {"Tensor": OP_TENSOR, "SymInt": OP_INT, "float": OP_FLOAT, "bool": OP_BOOL}
    if any(kind not in codes for kind in kinds):
        return False
    return register_native_op(qualname, namespace, op_name, fn.function, fn, fn.wrapper is not None,
                              [codes[kind] for kind in kinds], list(mutated), n_returns, python_kernel)


def _native_op_has_slot(qualname):
    return qualname in op_slot_of


def _native_op_state():
    """One line: whether as_torch_op registers C kernels, or why not."""
    if native_op_state == "not set up" and "torch" in sys.modules:
        _native_op_setup()
    return native_op_state
