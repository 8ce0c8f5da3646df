# FrozenFunction: arguments fixed ahead of time (freeze, prepare), the raw-pointer
# call (call_ptrs, tvmfast_call_ptrs) and the benchmark floors.
#
# What is frozen is the *objects*, not what they looked like: tvmfast keeps its
# own references to them, converts immutable values (int, float, bool, None, str,
# non-tensor tvm_ffi objects) once, and exports frozen tensors again at every call,
# so a call behaves like f(*same_objects) made now, whatever was done to those
# objects since (resize_, set_, copy_, an optimizer step, the caller's del).

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
    if kind == KIND_TORCH or kind == KIND_EXCHANGE or kind == KIND_DLPACK:
        return True
    if kind != KIND_FFI_OBJECT:
        return False
    cdef TVMFFIObjectHandle handle = cobject_handle(<object>obj)
    return handle != NULL and (<TVMFFIObject*>handle).type_index == kTVMFFITensor


cdef class FrozenFunction:
    """A bound function with some (or all) arguments fixed; create with
    ``BoundFunction.freeze`` or ``BoundFunction.prepare``."""

    def __cinit__(self):
        self.vectorcall = <void*>frozen_vectorcall
        self.dynamic_pos = NULL
        self.tensor_pos = NULL
        self.template = NULL
        self.held = NULL
        self.snapshot = NULL
        self.snapshot_dims = NULL
        self.num_held = 0

    def __init__(self, BoundFunction bound, dict frozen, int num_args):
        cdef int i, d = 0
        cdef int kind
        cdef const DLPackExchangeAPI* api = NULL
        cdef CallState st
        if self.dynamic_pos != NULL:
            # Built once: calls on other threads may be reading this state.
            raise_api_error(TypeError, "FrozenFunction", "already initialized; make a new one")
        check_bound(bound)
        if num_args < 0:
            raise_api_error(ValueError, "freeze", f"num_args must be >= 0, got {num_args}")
        if num_args > TVMFAST_STACK_ARGS:
            raise_api_error(ValueError, "freeze", f"supports at most {TVMFAST_STACK_ARGS} arguments")
        values = normalize_positions(frozen, num_args)
        self.args = [values.get(i) for i in range(num_args)]
        self.num_args = num_args
        self.num_dynamic = num_args - len(values)
        n = max(num_args, 1)
        self.dynamic_pos = <int32_t*>calloc(n, sizeof(int32_t))
        self.tensor_pos = <int32_t*>calloc(n, sizeof(int32_t))
        self.template = <TVMFFIAny*>calloc(n, sizeof(TVMFFIAny))
        self.held = <TVMFFIObjectHandle*>calloc(n, sizeof(void*))
        if self.dynamic_pos == NULL or self.tensor_pos == NULL or self.template == NULL or self.held == NULL:
            raise MemoryError()
        # Non-tensor values are converted once; the objects that creates (strings)
        # and our own references to tvm_ffi objects are held until __dealloc__.
        init_state(&st, NULL, self.held, bound.target.align_mask)
        for i in range(num_args):
            if i not in values:
                self.dynamic_pos[d] = i
                d += 1
                continue
            obj = <PyObject*>self.args[i]
            kind = classify_type(obj, i, &api)
            if is_tensor_kind(obj, kind):
                self.tensor_pos[self.num_frozen_tensors] = i
                self.num_frozen_tensors += 1
            elif kind == KIND_TVM_FFI or convert_kind(obj, i, kind, api, &self.template[i], &st) == USE_TVM_FFI:
                self.use_tvm_ffi = True
            elif kind == KIND_FFI_OBJECT:
                # Our own reference: the Python object may be moved from or dropped.
                TVMFFIObjectIncRef(self.template[i].v_ptr)
                self.held[st.n_objects] = self.template[i].v_ptr
                st.n_objects += 1
            self.num_held = st.n_objects
        if self.num_dynamic == 0 and not self.use_tvm_ffi:
            self.take_snapshot(bound.target.align_mask)
        self.bound = bound  # last: marks the object initialized

    cdef int pack_frozen(self, TVMFFIAny* packed, CallState* st) except -1:
        """packed = the template with every frozen tensor exported now (into st).
        Returns USE_TVM_FFI when one of them has become tvm_ffi's to convert."""
        cdef int k
        cdef int32_t pos
        memcpy(packed, self.template, self.num_args * sizeof(TVMFFIAny))
        for k in range(self.num_frozen_tensors):
            pos = self.tensor_pos[k]
            if convert_arg(<PyObject*>self.args[pos], pos, &packed[pos], st) == USE_TVM_FFI:
                return USE_TVM_FFI
        return CONVERTED

    cdef int take_snapshot(self, uint64_t align_mask) except -1:
        """call_ptrs' metadata: each tensor as it is now (shape, strides, dtype, device), own copies."""
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef TvmfastTensor* tensors[TVMFAST_STACK_ARGS]
        cdef CallState st
        cdef int k, total = 0, off = 0
        cdef DLTensor* dl
        init_state(&st, tensors, NULL, align_mask)
        try:
            if self.pack_frozen(packed, &st) == USE_TVM_FFI:
                return 0  # no snapshot: call_ptrs refuses
            for k in range(self.num_frozen_tensors):
                total += 2 * tensor_of(&packed[self.tensor_pos[k]]).ndim
            self.snapshot = <DLTensor*>calloc(max(self.num_frozen_tensors, 1), sizeof(DLTensor))
            self.snapshot_dims = <int64_t*>calloc(max(total, 1), sizeof(int64_t))
            if self.snapshot == NULL or self.snapshot_dims == NULL:
                raise MemoryError()
            for k in range(self.num_frozen_tensors):
                dl = tensor_of(&packed[self.tensor_pos[k]])
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
            if st.device_type >= 0:
                check_devices(&st, packed, self.num_args)
            self.snapshot_stream_api = st.stream_api
        finally:
            release_state(&st)
        self.num_tensor_slots = self.num_frozen_tensors
        return 0

    def __dealloc__(self):
        cdef int i
        for i in range(self.num_held):
            TVMFFIObjectDecRef(self.held[i])
        free(self.dynamic_pos)
        free(self.tensor_pos)
        free(self.template)
        free(self.held)
        free(self.snapshot)
        free(self.snapshot_dims)

    def __call__(self, *args):
        # Only PyObject_Call with a ready tuple lands here; plain calls use vectorcall.
        return frozen_vectorcall(<PyObject*>self, <void**>PySequence_Fast_ITEMS(args), len(args), NULL)

    cdef list full_args(self, void** items, Py_ssize_t n):
        cdef Py_ssize_t k
        cdef list args = list(self.args)
        for k in range(n):
            args[self.dynamic_pos[k]] = <object>items[k]
        return args

    cdef object call_vector(self, void** items, Py_ssize_t n):
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef TvmfastTensor* tensors[TVMFAST_STACK_ARGS]
        cdef TVMFFIObjectHandle objects[TVMFAST_STACK_ARGS]
        cdef CallState st
        cdef Py_ssize_t k
        cdef int32_t pos
        cdef BoundFunction fn = self.bound
        if n != self.num_dynamic:
            raise_count_error(self.num_dynamic, n)
        if self.use_tvm_ffi:
            return call_with_tvm_ffi(fn.function, self.full_args(items, n))
        init_state(&st, tensors, objects, fn.target.align_mask)
        try:
            if self.pack_frozen(packed, &st) == CONVERTED:
                for k in range(n):
                    pos = self.dynamic_pos[k]
                    if convert_arg(<PyObject*>items[k], pos, &packed[pos], &st) == USE_TVM_FFI:
                        break
                else:
                    return call_packed(&fn.target, packed, <int32_t>self.num_args, &st)
        finally:
            release_state(&st)
        return call_with_tvm_ffi(fn.function, self.full_args(items, n))

    def call_ptrs(self, *ptrs):
        """Call a prepared function with new data addresses, one int per tensor argument.

        The one raw-pointer escape hatch: shapes, strides, dtypes and devices are
        those the prepared tensors had at prepare(); TVM's generated checks still
        run on them, but nothing can check that each pointer really holds that much
        memory of that type, for the whole call.  GPU calls run on the producer's
        current stream, as f(...) does.
        """
        cdef void* cptrs[TVMFAST_STACK_ARGS]
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef TvmfastTensor* tensors[TVMFAST_STACK_ARGS]
        cdef CallState st
        cdef Py_ssize_t i, n = len(ptrs)
        cdef uint64_t address
        check_frozen(self)
        if self.snapshot == NULL:
            raise_api_error(TypeError, "call_ptrs",
                            "needs a prepared function (f.prepare(...)) whose arguments are tensors, "
                            "int, float, bool, str or None")
        if n != self.num_tensor_slots:
            raise_api_error(TypeError, "call_ptrs", f"expected {self.num_tensor_slots} data pointers, got {n}")
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
        init_state(&st, tensors, NULL, self.bound.target.align_mask)
        try:
            fill_ptrs(self, cptrs, packed, &st)
            st.devices_checked = 1  # checked at prepare()
            for i in range(self.num_tensor_slots):
                record_device(&st, &self.snapshot[i], self.tensor_pos[i], NULL, NULL)
            st.cpu_pos = -1
            st.stream_api = self.snapshot_stream_api
            return call_packed(&self.bound.target, packed, <int32_t>self.num_args, &st)
        finally:
            release_state(&st)

    def num_tensor_args(self):
        """How many of the prepared arguments are tensors (the call_ptrs count)."""
        check_frozen(self)
        return self.num_tensor_slots

    @staticmethod
    def raise_last_error():
        """Raise the TVM error left by a failed tvmfast_call_ptrs() on this thread."""
        raise_ffi_error()

    def __reduce__(self):
        raise_api_error(TypeError, "FrozenFunction",
                        "cannot be pickled (it holds live tensors); pickle the BoundFunction and freeze again")

    def __repr__(self):
        if self.bound is None:
            return "<tvmfast.FrozenFunction (not initialized)>"
        return f"<tvmfast.FrozenFunction num_args={self.num_args} dynamic={self.num_dynamic}>"


cdef inline int fill_ptrs(FrozenFunction prepared, void** ptrs, TVMFFIAny* packed,
                          CallState* st) noexcept nogil:
    """The prepared arguments with the k-th tensor at ptrs[k] (snapshot metadata).
    Returns -1 when out of memory (nothing raised)."""
    cdef int k
    cdef TvmfastTensor* t
    memcpy(packed, prepared.template, prepared.num_args * sizeof(TVMFFIAny))
    for k in range(prepared.num_tensor_slots):
        t = tvmfast_tensor_new()
        if t == NULL:
            return -1
        st.tensors[st.n_tensors] = t
        st.n_tensors += 1
        t.dl = prepared.snapshot[k]
        t.dl.data = ptrs[k]
        if tvmfast_tensor_own_dims(t) != 0:
            return -1
        packed[prepared.tensor_pos[k]].type_index = kTVMFFITensor
        packed[prepared.tensor_pos[k]].zero_padding = 0
        packed[prepared.tensor_pos[k]].v_ptr = t
    return 0


cdef int tvmfast_call_ptrs(FrozenFunction prepared, void** ptrs, int n) noexcept nogil:
    cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
    cdef TvmfastTensor* tensors[TVMFAST_STACK_ARGS]
    cdef CallState st
    cdef TVMFFIAny result
    cdef int ret, k
    if prepared.snapshot == NULL:
        TVMFFIErrorSetRaisedFromCStr("TypeError", "tvmfast_call_ptrs: not a prepared function")
        return -1
    if n != prepared.num_tensor_slots:
        TVMFFIErrorSetRaisedFromCStr("TypeError", "tvmfast_call_ptrs: wrong number of data pointers")
        return -1
    st.n_tensors = 0
    st.tensors = tensors
    if fill_ptrs(prepared, ptrs, packed, &st) != 0:
        ret = -1
        TVMFFIErrorSetRaisedFromCStr("MemoryError", "tvmfast_call_ptrs: out of memory")
    else:
        result.type_index = kTVMFFINone
        result.zero_padding = 0
        result.v_int64 = 0
        ret = TVMFFIFunctionCall(prepared.bound.target.handle, packed, prepared.num_args, &result)
        if ret == 0 and result.type_index >= kTVMFFIStaticObjectBegin:
            TVMFFIObjectDecRef(result.v_ptr)
    for k in range(st.n_tensors):
        tvmfast_tensor_release(tensors[k])  # no owner: no GIL needed
    return ret
