# Benchmark floors: what a call costs with tvmfast's own work taken out (not API).

def _floor_loop(FrozenFunction prepared, Py_ssize_t repeat):
    """Benchmark floor: ``repeat`` TVMFFIFunctionCall of a prepared call in a C loop
    (its arguments converted once, before the loop, and held through it)."""
    cdef CallContext ctx
    cdef TVMFFIAny result
    cdef Py_ssize_t r
    cdef int ret = 0
    check_frozen(prepared)
    if prepared.num_dynamic != 0 or prepared.use_tvm_ffi:
        raise_api_error(TypeError, "_floor_loop", "needs a prepared function of tensors and scalars")
    cdef TVMFFIObjectHandle handle = prepared.bound.target.handle
    cdef int32_t n = prepared.num_args
    ctx_open_or_raise(&ctx, n, prepared.bound.target.align_mask)
    try:
        if pack_frozen(prepared, &ctx) == LEFT_TO_TVM_FFI:
            raise_api_error(TypeError, "_floor_loop", "needs a prepared function of tensors and scalars")
        with nogil:
            for r in range(repeat):
                result.type_index = kTVMFFINone
                result.v_int64 = 0
                ret = TVMFFIFunctionCall(handle, ctx.packed, n, &result)
                if ret != 0:
                    break
                if result.type_index >= kTVMFFIStaticObjectBegin:
                    TVMFFIObjectDecRef(result.v_ptr)
        if ret != 0:
            raise_ffi_error()
    finally:
        ctx_close(&ctx)


cdef class _DefMethodFloor:
    """Benchmark floor of a Python-level call: ``call()`` is a bare Cython def method
    making the prepared call's TVMFFIFunctionCall on arguments converted once, when
    this object was made (and held by it).  An unchecked baseline for benchmarks,
    not an API: unlike a prepared call, it trusts that state until it is dropped."""
    cdef CallContext ctx
    cdef TVMFFIObjectHandle handle
    cdef int32_t n
    cdef FrozenFunction prepared

    def __cinit__(self):
        ctx_open(&self.ctx, 0, 0)

    def __init__(self, FrozenFunction prepared):
        check_frozen(prepared)
        if prepared.num_dynamic != 0 or prepared.use_tvm_ffi:
            raise_api_error(TypeError, "_DefMethodFloor", "needs a prepared function of tensors and scalars")
        ctx_close(&self.ctx)
        ctx_open_or_raise(&self.ctx, prepared.num_args, prepared.bound.target.align_mask)
        self.prepared = prepared
        self.handle = prepared.bound.target.handle
        self.n = prepared.num_args
        if pack_frozen(prepared, &self.ctx) == LEFT_TO_TVM_FFI:
            raise_api_error(TypeError, "_DefMethodFloor", "needs a prepared function of tensors and scalars")

    def call(self):
        cdef TVMFFIAny result
        result.type_index = kTVMFFINone
        result.v_int64 = 0
        if TVMFFIFunctionCall(self.handle, self.ctx.packed, self.n, &result) != 0:
            raise_ffi_error()
        if result.type_index >= kTVMFFIStaticObjectBegin:
            TVMFFIObjectDecRef(result.v_ptr)

    def __dealloc__(self):
        ctx_close(&self.ctx)
