# FrozenFunction: arguments fixed ahead of time (freeze, prepare).  Its raw-pointer
# call (call_ptrs, tvmfast_call_ptrs) is in pointers.pxi.
#
# What is frozen is the *objects*, not what they looked like: tvmfast keeps its
# own references to them, converts immutable values (int, float, bool, None, str,
# non-tensor tvm_ffi objects) once, and exports frozen tensors again at every call,
# so a call behaves like f(*same_objects) made now, whatever was done to those
# objects since (resize_, set_, copy_, an optimizer step, the caller's del).

cdef object frozen_vectorcall(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames):
    if kwnames != NULL and PyTuple_GET_SIZE(kwnames) != 0:
        raise TypeError("tvmfast: bound functions take positional arguments only")
    check_frozen(<FrozenFunction>callable)
    return frozen_call(<FrozenFunction>callable, args, PyVectorcall_NARGS(nargsf))


cdef inline int check_frozen(FrozenFunction fn) except -1:
    if fn.bound is None:
        raise_api_error(TypeError, "FrozenFunction", "not initialized; create it with freeze() or prepare()")
    return 0


cdef dict normalize_positions(dict frozen, int num_args):
    """{position: value} with every key an int in range(num_args), given once."""
    cdef dict values = {}
    for key, value in list(frozen.items()):
        if type(key) is bool:
            raise_api_error(TypeError, "freeze", f"position {key!r} must be an int, not bool")
        try:
            pos = operator.index(key)
        except TypeError:
            raise_api_error(TypeError, "freeze", f"position {key!r} is not an int")
        if not 0 <= pos < num_args:
            raise_api_error(ValueError, "freeze", f"position {key!r} is not in range(0, {num_args})")
        if pos in values:
            raise_api_error(ValueError, "freeze", f"position {pos} is given twice")
        values[pos] = value
    return values


cdef bint is_tensor_kind(PyObject* obj, int kind) except -1:
    """A tensor: exported again at each call, as it is then."""
    if kind == KIND_TORCH or kind == KIND_EXCHANGE or kind == KIND_DLPACK or kind == KIND_NUMPY:
        return True
    if kind != KIND_FFI_OBJECT:
        return False
    cdef TVMFFIObjectHandle handle = cobject_handle(<object>obj)
    return handle != NULL and (<TVMFFIObject*>handle).type_index == kTVMFFITensor


cdef class FrozenFunction:
    """A bound function with some (or all) arguments fixed; create with
    ``BoundFunction.freeze`` or ``BoundFunction.prepare``."""

    def __cinit__(self):
        self.vectorcall = <void*>tvmfast_frozen_entry
        self.dynamic_pos = NULL
        self.tensor_pos = NULL
        self.percall_pos = NULL
        self.template = NULL
        self.held = NULL
        self.snapshot = NULL
        self.snapshot_dims = NULL
        self.num_held = 0

    def __init__(self, BoundFunction bound, dict frozen, int num_args):
        cdef int i, d = 0
        cdef int kind
        cdef const DLPackExchangeAPI* api = NULL
        cdef CallContext ctx
        cdef PyObject* ancestors[MAX_NESTING]
        if self.dynamic_pos != NULL:
            # Built once: calls on other threads may be reading this state.
            raise_api_error(TypeError, "FrozenFunction", "already initialized; make a new one")
        check_bound(bound)
        if num_args < 0:
            raise_api_error(ValueError, "freeze", f"num_args must be >= 0, got {num_args}")
        values = normalize_positions(frozen, num_args)
        self.args = [values.get(i) for i in range(num_args)]
        self.num_args = num_args
        self.num_dynamic = num_args - len(values)
        n = max(num_args, 1)
        self.dynamic_pos = <int32_t*>calloc(n, sizeof(int32_t))
        self.tensor_pos = <int32_t*>calloc(n, sizeof(int32_t))
        self.percall_pos = <int32_t*>calloc(n, sizeof(int32_t))
        self.template = <TVMFFIAny*>calloc(n, sizeof(TVMFFIAny))
        self.held = <TVMFFIObjectHandle*>calloc(n, sizeof(void*))
        if (self.dynamic_pos == NULL or self.tensor_pos == NULL or self.percall_pos == NULL
                or self.template == NULL or self.held == NULL):
            raise MemoryError()
        # Non-tensor values are converted once; the objects that creates (strings)
        # and our own references to tvm_ffi objects are held until __dealloc__: a
        # conversion context whose object list is self.held (never closed).
        ctx_open(&ctx, 0, bound.target.align_mask)
        ctx.objects = self.held
        ctx.objects_cap = n
        for i in range(num_args):
            if i not in values:
                self.dynamic_pos[d] = i
                d += 1
                continue
            obj = <PyObject*>self.args[i]
            kind = classify_type(obj, i, &api)
            if left_to_tvm_ffi(obj, i, ancestors, 0):
                self.use_tvm_ffi = True  # a value of a kind tvm_ffi converts (a big int, a callable...)
            elif is_tensor_kind(obj, kind):
                self.tensor_pos[self.num_frozen_tensors] = i
                self.num_frozen_tensors += 1
            elif kind == KIND_TUPLE or kind == KIND_LIST or kind == KIND_DICT or kind == KIND_NATIVE_OBJECT:
                # What may hold tensors or change (a list, a dict): converted at each call.
                self.percall_pos[self.num_percall] = i
                self.num_percall += 1
            elif convert_kind(obj, i, kind, api, &self.template[i], &ctx) == LEFT_TO_TVM_FFI:
                self.use_tvm_ffi = True
            elif kind == KIND_FFI_OBJECT:
                # Our own reference: the Python object may be moved from or dropped.
                TVMFFIObjectIncRef(self.template[i].v_ptr)
                self.held[ctx.n_objects] = self.template[i].v_ptr
                ctx.n_objects += 1
            self.num_held = ctx.n_objects
        if self.num_dynamic == 0 and not self.use_tvm_ffi and self.num_percall == 0:
            take_snapshot(self, bound.target.align_mask)
        self.bound = bound  # last: marks the object initialized

    def __dealloc__(self):
        cdef int i
        for i in range(self.num_held):
            TVMFFIObjectDecRef(self.held[i])
        free(self.dynamic_pos)
        free(self.tensor_pos)
        free(self.percall_pos)
        free(self.template)
        free(self.held)
        free(self.snapshot)
        free(self.snapshot_dims)

    def __call__(self, *args):
        # Only PyObject_Call with a ready tuple lands here; plain calls use vectorcall.
        return reraise_if_failure(
            frozen_vectorcall(<PyObject*>self, <void**>PySequence_Fast_ITEMS(args), len(args), NULL))

    def call_ptrs(self, *ptrs):
        """Call a prepared function with new data addresses, one int per tensor argument.

        The one raw-pointer escape hatch: shapes, strides, dtypes and devices are
        those the prepared tensors had at prepare(); TVM's generated checks still
        run on them, but nothing can check that each pointer really holds that much
        memory of that type, for the whole call.  GPU calls run on the producer's
        current stream, as f(...) does.
        """
        check_frozen(self)
        return call_with_pointers(self, ptrs)

    def num_tensor_args(self):
        """How many of the prepared arguments are tensors (the call_ptrs count)."""
        check_frozen(self)
        return self.num_frozen_tensors

    @staticmethod
    def raise_last_error():
        """Raise the TVM error left by a failed tvmfast_call_ptrs() on this thread."""
        raise_ffi_error()

    def __reduce__(self):
        raise_api_error(TypeError, "FrozenFunction",
                        "cannot be pickled (it holds live tensors); pickle the BoundFunction and freeze again")

    def __copy__(self):
        raise_api_error(TypeError, "FrozenFunction",
                        "cannot be copied (it holds the frozen arguments themselves); call freeze() or "
                        "prepare() on the BoundFunction again (f.bound), with the arguments the copy should hold")

    def __deepcopy__(self, memo):
        self.__copy__()

    def __repr__(self):
        if self.bound is None:
            return "<tvmfast.FrozenFunction (not initialized)>"
        if self.num_dynamic == 0:
            return f"<tvmfast.FrozenFunction prepared: all {self.num_args} arguments fixed, call it as p()>"
        return (f"<tvmfast.FrozenFunction {self.num_args - self.num_dynamic} of {self.num_args} arguments fixed, "
                f"takes the other {self.num_dynamic}>")


cdef int pack_frozen(FrozenFunction self, CallContext* ctx) except -1:
    """ctx.packed = the template with every frozen tensor exported now (into ctx).
    Returns LEFT_TO_TVM_FFI when one of them has become tvm_ffi's to convert."""
    cdef int k
    cdef int32_t pos
    memcpy(ctx.packed, self.template, self.num_args * sizeof(TVMFFIAny))
    for k in range(self.num_frozen_tensors):
        pos = self.tensor_pos[k]
        if convert_arg(<PyObject*>self.args[pos], pos, &ctx.packed[pos], ctx) == LEFT_TO_TVM_FFI:
            return LEFT_TO_TVM_FFI
    for k in range(self.num_percall):
        pos = self.percall_pos[k]
        if convert_arg(<PyObject*>self.args[pos], pos, &ctx.packed[pos], ctx) == LEFT_TO_TVM_FFI:
            return LEFT_TO_TVM_FFI
    return CONVERTED


cdef list full_args(FrozenFunction self, void** items, Py_ssize_t n):
    cdef Py_ssize_t k
    cdef list args = list(self.args)
    for k in range(n):
        args[self.dynamic_pos[k]] = <object>items[k]
    return args


cdef object frozen_call(FrozenFunction self, void** items, Py_ssize_t n):
    """A frozen or prepared call: the frozen arguments (tensors exported again now), then
    the dynamic ones, in one call context."""
    cdef CallContext ctx
    cdef Py_ssize_t k
    cdef int32_t pos
    cdef BoundFunction fn = self.bound
    if n != self.num_dynamic:
        raise_count_error(self.num_dynamic, n)
    if self.use_tvm_ffi or call_converts_itself(items, n):
        return call_with_tvm_ffi_list(fn.function, full_args(self, items, n))
    ctx_open_or_raise(&ctx, self.num_args, fn.target.align_mask)
    try:
        if pack_frozen(self, &ctx) == CONVERTED:
            for k in range(n):
                pos = self.dynamic_pos[k]
                if convert_arg(<PyObject*>items[k], pos, &ctx.packed[pos], &ctx) == LEFT_TO_TVM_FFI:
                    break
            else:
                return call_from_python(&fn.target, &ctx, <int32_t>self.num_args, True)
    finally:
        ctx_close(&ctx)
    return call_with_tvm_ffi_list(fn.function, full_args(self, items, n))
