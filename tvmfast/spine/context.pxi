# The call context.  Every call form (dynamic, frozen, prepared, call_ptrs,
# tvmfast_call_ptrs, the native op's C kernel, the benchmark floors) opens one
# CallContext, fills ctx.packed and hands it to invoke() (spine/invoke.pxi); nothing
# else allocates a call's buffers, swaps TVM's stream or allocator, or releases what a
# call created.

cdef enum:
    # Arguments converted into the context's own buffers; more than this use the heap.
    TVMFAST_STACK_ARGS = 64


# One call: its buffers, what it created (and must release), the devices it saw and
# the environment it swapped (stream, tensor allocator).  Lives on the caller's C
# stack (or, for a benchmark floor, in an object); ctx_open / ctx_close bracket it.
ctypedef struct CallContext:
    TVMFFIAny* packed            # the arguments as passed
    TvmfastTensor** tensors      # tensor objects created for the call (ours to release)
    TVMFFIObjectHandle* objects  # other references the call holds (strings, shared slots)
    void* heap                   # the three buffers for calls of over TVMFAST_STACK_ARGS
    int32_t n_tensors
    int32_t n_objects
    int32_t tensors_cap          # room in tensors / objects: tuples, lists and dicts add
    int32_t objects_cap          # entries of their own (ctx_grow gives more)
    void* grown_tensors          # tensors / objects moved to the heap by ctx_grow (ours), or NULL
    void* grown_objects
    int32_t depth                # > 0 while the elements of a tuple, list or dict are converted
    uint64_t align_mask          # data alignment the callee assumes, - 1
    int32_t n_scratch            # misaligned tensors passed through an aligned copy
    Py_ssize_t kept              # after the call: an argument whose copy the callee kept, or -1
    PyObject* error              # a Python exception of the call (invoke's CALL_PY_ERROR), or NULL
    # devices
    int32_t device_type          # first non-CPU device seen, or -1
    int32_t device_id
    int32_t device_pos           # its argument position
    int32_t cpu_pos              # first CPU tensor position, or -1
    bint devices_checked         # all tensors known to share one device
    int32_t nested_device_type   # first non-CPU device inside a tuple, list or dict, or -1
    int32_t nested_device_id
    const DLPackExchangeAPI* nested_stream_api
    void* device_obj             # the Python object of that first non-CPU tensor (borrowed)
    const DLPackExchangeAPI* stream_api    # producer to ask for the current stream
    const DLPackExchangeAPI* exchange_api  # last exchange-API producer: allocator, results
    # the environment around the call
    bint has_stream
    void* stream
    TVMFFIStreamHandle prev_stream
    bint stream_swapped
    DLPackManagedTensorAllocator prev_allocator
    bint allocator_swapped
    TVMFFIAny packed_inline[TVMFAST_STACK_ARGS]
    TvmfastTensor* tensors_inline[TVMFAST_STACK_ARGS]
    TVMFFIObjectHandle objects_inline[TVMFAST_STACK_ARGS]


cdef inline int ctx_open(CallContext* ctx, Py_ssize_t n, uint64_t align_mask) noexcept nogil:
    """Make ctx ready for a call of n arguments.  -1 when out of memory (nothing raised)."""
    tvmfast_stamp(TVMFAST_STAGE_START)
    ctx.n_tensors = 0
    ctx.n_objects = 0
    ctx.grown_tensors = NULL
    ctx.grown_objects = NULL
    ctx.depth = 0
    ctx.nested_device_type = -1
    ctx.nested_device_id = 0
    ctx.nested_stream_api = NULL
    ctx.align_mask = align_mask
    ctx.n_scratch = 0
    ctx.kept = -1
    ctx.error = NULL
    ctx.device_type = -1
    ctx.device_id = 0
    ctx.device_pos = -1
    ctx.cpu_pos = -1
    ctx.devices_checked = False
    ctx.device_obj = NULL
    ctx.stream_api = NULL
    ctx.exchange_api = NULL
    ctx.has_stream = False
    ctx.stream_swapped = False
    ctx.allocator_swapped = False
    ctx.heap = NULL
    if n <= TVMFAST_STACK_ARGS:
        ctx.packed = ctx.packed_inline
        ctx.tensors = ctx.tensors_inline
        ctx.objects = ctx.objects_inline
        ctx.tensors_cap = TVMFAST_STACK_ARGS
        ctx.objects_cap = TVMFAST_STACK_ARGS
        tvmfast_stamp(TVMFAST_STAGE_OPEN)
        return 0
    ctx.heap = malloc(n * (sizeof(TVMFFIAny) + sizeof(void*) + sizeof(void*)))
    if ctx.heap == NULL:
        return -1
    ctx.packed = <TVMFFIAny*>ctx.heap
    ctx.tensors = <TvmfastTensor**>(<char*>ctx.heap + n * sizeof(TVMFFIAny))
    ctx.objects = <TVMFFIObjectHandle*>(<char*>ctx.heap + n * (sizeof(TVMFFIAny) + sizeof(void*)))
    ctx.tensors_cap = <int32_t>n
    ctx.objects_cap = <int32_t>n
    tvmfast_stamp(TVMFAST_STAGE_OPEN)
    return 0


cdef inline int ctx_open_or_raise(CallContext* ctx, Py_ssize_t n, uint64_t align_mask) except -1:
    if ctx_open(ctx, n, align_mask) != 0:
        raise MemoryError()
    return 0


cdef inline void ctx_release(CallContext* ctx) noexcept nogil:
    """Give back the tensor objects and references the call holds, and the heap buffers.
    Without the GIL only when no tensor has an owner (call_ptrs' tensors have none)."""
    cdef int32_t i
    for i in range(ctx.n_tensors):
        tvmfast_tensor_release(ctx.tensors[i])
    ctx.n_tensors = 0
    for i in range(ctx.n_objects):
        TVMFFIObjectDecRef(ctx.objects[i])
    ctx.n_objects = 0
    free(ctx.heap)
    ctx.heap = NULL
    if ctx.grown_tensors != NULL or ctx.grown_objects != NULL:
        free(ctx.grown_tensors)
        free(ctx.grown_objects)
        ctx.grown_tensors = NULL
        ctx.grown_objects = NULL


cdef inline void ctx_close(CallContext* ctx) noexcept:
    """A Python front door's one exit, after the call or a failed conversion: release
    everything the context still holds (after invoke(), which released it, only a check)."""
    if (ctx.n_tensors != 0 or ctx.n_objects != 0 or ctx.heap != NULL
            or ctx.grown_tensors != NULL or ctx.grown_objects != NULL):
        ctx_release(ctx)
    if ctx.error != NULL:
        ctx_drop_python(ctx)


cdef int ctx_grow(CallContext* ctx, bint tensors) except -1:
    """Twice the room for tensors (or other references) a call holds: a tuple, list or
    dict passes more of them than the call has arguments."""
    cdef int32_t cap = ctx.tensors_cap if tensors else ctx.objects_cap
    cdef int32_t new_cap = 2 * cap if cap > 0 else 8
    cdef void* grown = malloc(new_cap * sizeof(void*))
    if grown == NULL:
        raise MemoryError()
    if tensors:
        memcpy(grown, ctx.tensors, ctx.n_tensors * sizeof(void*))
        free(ctx.grown_tensors)
        ctx.grown_tensors = grown
        ctx.tensors = <TvmfastTensor**>grown
        ctx.tensors_cap = new_cap
    else:
        memcpy(grown, ctx.objects, ctx.n_objects * sizeof(void*))
        free(ctx.grown_objects)
        ctx.grown_objects = grown
        ctx.objects = <TVMFFIObjectHandle*>grown
        ctx.objects_cap = new_cap
    return 0


cdef inline int ctx_hold_object(CallContext* ctx, TVMFFIObjectHandle handle) except -1:
    """The call owns one reference to handle, given back by ctx_release."""
    if ctx.n_objects == ctx.objects_cap:
        ctx_grow(ctx, False)
    ctx.objects[ctx.n_objects] = handle
    ctx.n_objects += 1
    return 0


cdef void ctx_drop_python(CallContext* ctx) noexcept:
    """The Python object a context may hold: an error nobody raised."""
    if ctx.error != NULL:
        Py_DECREF(<object>ctx.error)
        ctx.error = NULL


cdef int ctx_enter(CallContext* ctx) noexcept nogil:
    """Make the call's stream (ctx.stream, when ctx.has_stream) TVM's for its device, and the
    last exchange-API producer's tensor allocator TVM's, as tvm_ffi does for rt_mod.
    -1 with the TVM-FFI error raised (nothing left swapped)."""
    if ctx.has_stream:
        # Usually TVM's stream is already the producer's (the default stream): then one
        # query replaces a set and a restore.
        ctx.prev_stream = TVMFFIEnvGetStream(ctx.device_type, ctx.device_id)
        if ctx.prev_stream != ctx.stream:
            if TVMFFIEnvSetStream(ctx.device_type, ctx.device_id, ctx.stream, NULL) != 0:
                return -1
            ctx.stream_swapped = True
    if ctx.exchange_api != NULL and ctx.exchange_api.managed_tensor_allocator != NULL:
        # Tensors the callee allocates (TVMFFIEnvTensorAlloc) come from the producer.
        ctx.prev_allocator = TVMFFIEnvGetDLPackManagedTensorAllocator()
        if ctx.prev_allocator != ctx.exchange_api.managed_tensor_allocator:
            if TVMFFIEnvSetDLPackManagedTensorAllocator(
                    ctx.exchange_api.managed_tensor_allocator, 0, NULL) != 0:
                ctx_exit(ctx)
                return -1
            ctx.allocator_swapped = True
    return 0


cdef void ctx_exit(CallContext* ctx) noexcept nogil:
    """Restore what ctx_enter swapped, also when the call failed."""
    if ctx.allocator_swapped:
        TVMFFIEnvSetDLPackManagedTensorAllocator(ctx.prev_allocator, 0, NULL)
        ctx.allocator_swapped = False
    if ctx.stream_swapped:
        TVMFFIEnvSetStream(ctx.device_type, ctx.device_id, ctx.prev_stream, NULL)
        ctx.stream_swapped = False
