# FrozenFunction: arguments converted ahead of time (freeze, prepare), the
# raw-pointer call (call_ptrs, tvmfast_call_ptrs) and the benchmark floor loop.

cdef class FrozenFunction:
    """A bound function with some (or all) arguments converted ahead of time."""

    def __cinit__(self):
        self.vectorcall = <void*>frozen_vectorcall
        self.dynamic_pos = NULL
        self.template = NULL
        self.frozen_dl = NULL
        self.shape_copy = NULL
        self.live_shape = NULL
        self.frozen_state.owned = NULL
        self.frozen_state.temps = NULL

    def __init__(self, BoundFunction bound, dict frozen, int num_args):
        if num_args > TVMFAST_STACK_ARGS:
            raise ValueError(f"tvmfast: freeze/prepare support at most {TVMFAST_STACK_ARGS} arguments")
        for pos in frozen:
            if not isinstance(pos, int) or not 0 <= pos < num_args:
                raise ValueError(f"tvmfast: freeze position {pos!r} is not in range(0, {num_args})")
        self.bound = bound
        self.num_args = num_args
        self.num_dynamic = num_args - len(frozen)
        self.frozen_values = frozen
        self.build()

    cdef int build(self) except -1:
        """Convert the frozen values into the argument template (again, after the
        function turned out to need owned tensors)."""
        cdef int i, d = 0, n = self.num_args
        cdef TVMFFIObjectHandle* owned
        self.free_buffers()
        self.template = <TVMFFIAny*>calloc(max(n, 1), sizeof(TVMFFIAny))
        self.frozen_dl = <DLTensor*>calloc(max(n, 1), sizeof(DLTensor))
        self.dynamic_pos = <int32_t*>calloc(max(self.num_dynamic, 1), sizeof(int32_t))
        self.live_shape = <const int64_t**>calloc(max(n, 1), sizeof(void*))
        owned = <TVMFFIObjectHandle*>calloc(max(n, 1), sizeof(void*))
        init_state(&self.frozen_state, owned, self.bound.align_mask)
        if (self.template == NULL or self.frozen_dl == NULL or self.dynamic_pos == NULL
                or self.live_shape == NULL or owned == NULL):
            raise MemoryError()
        for i in range(n):
            if i in self.frozen_values:
                convert_arg(<PyObject*>self.frozen_values[i], i, &self.template[i],
                            &self.frozen_dl[i], &self.frozen_state, self.bound.tensor_mode)
            else:
                self.dynamic_pos[d] = i
                d += 1
        self.snapshot_shapes()
        self.num_tensor_slots = 0
        for i in range(n):
            if self.template[i].type_index == kTVMFFIDLTensorPtr:
                self.num_tensor_slots += 1
        if self.frozen_state.device_type >= 0:
            # Frozen tensors cannot move: check their devices once, here.
            check_devices(&self.frozen_state, self.template, n)
        return 0

    cdef void free_buffers(self) noexcept:
        if self.frozen_state.owned != NULL:
            release_state(&self.frozen_state)
            free(self.frozen_state.owned)
            self.frozen_state.owned = NULL
        free(self.template)
        free(self.frozen_dl)
        free(self.dynamic_pos)
        free(self.shape_copy)
        free(self.live_shape)
        self.template = NULL
        self.frozen_dl = NULL
        self.dynamic_pos = NULL
        self.shape_copy = NULL
        self.live_shape = NULL

    cdef int snapshot_shapes(self) except -1:
        """Copy the frozen DLTensors' shape/strides into our own storage.

        The producer's arrays stay valid while the tensor lives, but change under
        resize_(); keeping the producer's pointer lets each call notice that cheaply.
        """
        cdef int i, total = 0, off = 0
        cdef DLTensor* dl
        for i in range(self.num_args):
            if self.template[i].type_index == kTVMFFIDLTensorPtr:
                total += 2 * self.frozen_dl[i].ndim
        self.shape_copy = <int64_t*>calloc(max(total, 1), sizeof(int64_t))
        if self.shape_copy == NULL:
            raise MemoryError()
        for i in range(self.num_args):
            if self.template[i].type_index != kTVMFFIDLTensorPtr:
                continue
            dl = &self.frozen_dl[i]
            self.live_shape[i] = dl.shape
            memcpy(&self.shape_copy[off], dl.shape, dl.ndim * sizeof(int64_t))
            dl.shape = &self.shape_copy[off]
            off += dl.ndim
            if dl.strides != NULL:
                memcpy(&self.shape_copy[off], dl.strides, dl.ndim * sizeof(int64_t))
                dl.strides = &self.shape_copy[off]
            off += dl.ndim
        return 0

    def __dealloc__(self):
        self.free_buffers()

    cdef int check_frozen_shapes(self) except -1:
        cdef int i
        cdef DLTensor* dl
        for i in range(self.num_args):
            if self.live_shape[i] != NULL:
                dl = &self.frozen_dl[i]
                if memcmp(self.live_shape[i], dl.shape, dl.ndim * sizeof(int64_t)) != 0:
                    raise RuntimeError(
                        f"tvmfast: frozen argument #{i} changed shape since freeze()/prepare() "
                        f"(resize_ or set_ on it?); freeze or prepare again")
        return 0

    cdef inline void start_state(self, CallState* st, TVMFFIObjectHandle* owned, void** items) noexcept:
        """A call's state: what the frozen arguments told (devices, exemplar), with the
        call's own buffers for owned handles and no temporaries yet."""
        st[0] = self.frozen_state
        st.owned = owned
        st.n_owned = 0
        st.temps = NULL
        st.items = items
        st.frozen = <void*>self

    def __call__(self, *args):
        # Only PyObject_Call with a ready tuple lands here; plain calls use vectorcall.
        return frozen_vectorcall(<PyObject*>self, <void**>PySequence_Fast_ITEMS(args), len(args), NULL)

    cdef object call_vector(self, void** items, Py_ssize_t n):
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef DLTensor dl[TVMFAST_STACK_ARGS]
        cdef TVMFFIObjectHandle owned[TVMFAST_STACK_ARGS]
        cdef CallState st
        cdef Py_ssize_t k
        cdef int32_t pos
        cdef BoundFunction fn = self.bound
        if n != self.num_dynamic:
            raise_count_error(self.num_dynamic, n)
        self.check_frozen_shapes()
        self.start_state(&st, owned, items)
        if n == 0:
            # Prepared: the template is complete and only read by the callee, and its
            # devices were checked when it was built.
            st.devices_checked = 1
            ret = finish_call(fn, self.template, <int32_t>self.num_args, &st)
            if ret is RETRY_OWNED:
                self.build()
                return self.call_vector(items, n)
            return ret
        memcpy(packed, self.template, self.num_args * sizeof(TVMFFIAny))
        try:
            for k in range(n):
                pos = self.dynamic_pos[k]
                convert_arg(<PyObject*>items[k], pos, &packed[pos], &dl[pos], &st, fn.tensor_mode)
            ret = finish_call(fn, packed, <int32_t>self.num_args, &st)
        finally:
            release_state(&st)
        if ret is RETRY_OWNED:
            self.build()
            return self.call_vector(items, n)
        return ret

    def call_ptrs(self, *ptrs):
        """Call a prepared function with new data addresses, one int per tensor argument.

        Shapes, dtypes and devices stay those given to prepare(); TVM's generated
        checks still run on them, but nothing can check that each pointer really
        holds that much memory of that type.  GPU calls run on the producer's
        current stream, as f(...) does.
        """
        cdef void* cptrs[TVMFAST_STACK_ARGS]
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef DLTensor dl[TVMFAST_STACK_ARGS]
        cdef TVMFFIObjectHandle owned[1]
        cdef CallState st
        cdef Py_ssize_t i, n = len(ptrs)
        cdef uint64_t address
        if self.template == NULL or self.num_dynamic != 0:
            raise TypeError("tvmfast: call_ptrs() needs a prepared function (f.prepare(...))")
        if n != self.num_tensor_slots:
            raise TypeError(f"tvmfast: call_ptrs() expected {self.num_tensor_slots} data pointers, got {n}")
        for i in range(n):
            p = <PyObject*>ptrs[i]
            if Py_TYPE(p) != &PyLong_Type:
                raise TypeError(f"tvmfast: call_ptrs() pointer #{i}: expected int, got {describe(p)}")
            try:
                address = PyLong_AsUnsignedLongLong(p)
            except OverflowError:
                raise ValueError(f"tvmfast: call_ptrs() pointer #{i} ({<object>p}) is not an address") from None
            if address == 0:
                raise ValueError(f"tvmfast: call_ptrs() pointer #{i} is null")
            if address & self.bound.align_mask:
                raise ValueError(
                    f"tvmfast: call_ptrs() pointer #{i} ({address:#x}) is not "
                    f"{self.bound.align_mask + 1}-byte aligned")
            cptrs[i] = <void*>address
        fill_ptrs(self, cptrs, packed, dl)
        self.start_state(&st, owned, NULL)
        st.devices_checked = 1
        return finish_call(self.bound, packed, <int32_t>self.num_args, &st)

    def num_tensor_args(self):
        """How many of the prepared arguments are DLTensors (the call_ptrs count)."""
        return self.num_tensor_slots

    @staticmethod
    def raise_last_error():
        """Raise the TVM error left by a failed tvmfast_call_ptrs() on this thread."""
        raise_ffi_error()

    def __repr__(self):
        return f"<tvmfast.FrozenFunction num_args={self.num_args} dynamic={self.num_dynamic}>"


cdef inline void fill_ptrs(FrozenFunction prepared, void** ptrs, TVMFFIAny* packed,
                           DLTensor* dl) noexcept nogil:
    """The prepared arguments with the k-th DLTensor's data replaced by ptrs[k]."""
    cdef int i, k = 0
    memcpy(packed, prepared.template, prepared.num_args * sizeof(TVMFFIAny))
    for i in range(prepared.num_args):
        if packed[i].type_index == kTVMFFIDLTensorPtr:
            dl[i] = prepared.frozen_dl[i]
            dl[i].data = ptrs[k]
            dl[i].byte_offset = 0
            packed[i].v_ptr = &dl[i]
            k += 1


cdef int tvmfast_call_ptrs(FrozenFunction prepared, void** ptrs, int n) noexcept nogil:
    cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
    cdef DLTensor dl[TVMFAST_STACK_ARGS]
    cdef TVMFFIAny result
    cdef int ret
    if prepared.template == NULL or prepared.num_dynamic != 0:
        TVMFFIErrorSetRaisedFromCStr("TypeError", "tvmfast_call_ptrs: not a prepared function")
        return -1
    if n != prepared.num_tensor_slots:
        TVMFFIErrorSetRaisedFromCStr("TypeError", "tvmfast_call_ptrs: wrong number of data pointers")
        return -1
    fill_ptrs(prepared, ptrs, packed, dl)
    result.type_index = kTVMFFINone
    result.zero_padding = 0
    result.v_int64 = 0
    ret = TVMFFIFunctionCall(prepared.bound.handle, packed, prepared.num_args, &result)
    if ret == 0 and result.type_index >= kTVMFFIStaticObjectBegin:
        TVMFFIObjectDecRef(result.v_ptr)
    return ret


def _floor_loop(FrozenFunction prepared, Py_ssize_t repeat):
    """Benchmark floor: ``repeat`` TVMFFIFunctionCall of a prepared call in a C loop."""
    cdef TVMFFIAny result
    cdef Py_ssize_t r
    cdef int ret = 0
    cdef TVMFFIObjectHandle handle = prepared.bound.handle
    cdef TVMFFIAny* packed = prepared.template
    cdef int32_t n = prepared.num_args
    if prepared.num_dynamic != 0:
        raise TypeError("_floor_loop needs a prepared function")
    with nogil:
        for r in range(repeat):
            result.type_index = kTVMFFINone
            result.v_int64 = 0
            ret = TVMFFIFunctionCall(handle, packed, n, &result)
            if ret != 0:
                break
    if ret != 0:
        raise_ffi_error()
