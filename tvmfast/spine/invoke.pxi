# The spine: every call tvmfast makes goes through invoke().  A front door (the dynamic
# call of doors/bound.pxi, the frozen and prepared calls of doors/frozen.pxi, the raw
# pointers of doors/pointers.pxi, the C kernel of torch/native_op.pxi) opens a
# CallContext, fills it (ctx.packed converted, devices checked, the stream chosen), and
# hands it to invoke(), which performs the call, top to bottom:
#
#   1. misaligned CPU data gets its aligned copies (memory/aligned_copy.pxi)
#   2. TVM's stream and tensor allocator become the call's (ctx_enter)
#   3. the GIL is handed off as the function says (f.release_gil), whoever holds it
#   4. TVMFFIFunctionCall, through the one frame TVM-FFI recognises (spine/frame.h)
#   5. the GIL is taken back, TVM's environment restored (ctx_exit)
#   6. the copies are settled: the callee's writes written back, a kept copy found
#   7. the context releases what it holds (tensor objects, references, buffers)
#
# The outcome is a code; the door makes it its result or its error (finish_call in
# spine/results.pxi for the Python doors, the op's outputs for the native op).  What
# the context holds after a failure before invoke() is released by the door's one exit
# (ctx_close, which does nothing more once invoke() has released).

cdef enum:
    CALL_OK = 0
    CALL_FFI_ERROR = -1    # TVM-FFI's error, raised in its thread-local slot
    CALL_PY_ERROR = -2     # ctx.error: the Python exception (a new reference)


cdef inline int invoke(CallTarget* target, CallContext* ctx, int32_t n, TVMFFIAny* result,
                       bint gil_held) noexcept nogil:
    """Perform the call of target on ctx.packed[:n]; result receives its value (ours).
    gil_held: whether this thread holds the GIL (a Python door knows it does; a C door asks
    PyGILState_Check)."""
    cdef int ret
    result.type_index = kTVMFFINone
    result.zero_padding = 0
    result.v_int64 = 0
    if ctx.n_scratch and copy_in(ctx, n) != 0:
        ctx_release(ctx)
        return CALL_PY_ERROR
    tvmfast_stamp(TVMFAST_STAGE_DEVICES)
    if ctx_enter(ctx) != 0:
        ctx_release(ctx)
        return CALL_FFI_ERROR
    tvmfast_stamp(TVMFAST_STAGE_ENV)
    ret = call_with_gil_handed_off(target, ctx.packed, n, result, gil_held)
    tvmfast_stamp(TVMFAST_STAGE_GIL_ACQUIRE)
    ctx_exit(ctx)
    if ctx.n_scratch:
        # Success or failure: the callee's writes reach the caller's tensors.
        ctx.kept = settle_misaligned(ctx, n, result)
    ctx_release(ctx)
    tvmfast_stamp(TVMFAST_STAGE_CLOSE)
    return CALL_OK if ret == 0 else CALL_FFI_ERROR


cdef inline int call_with_gil_handed_off(CallTarget* target, TVMFFIAny* args, int32_t n,
                                         TVMFFIAny* result, bint gil_held) noexcept nogil:
    """TVMFFIFunctionCall with the GIL released (target.release_gil, read at each call, as
    tvm_ffi does) or held, whether or not this thread holds it on entry (a Python front door
    does; torch's dispatcher calling an op's C kernel does not; AOTInductor's runner does).
    Every object the callee reads is owned by the context (tensors hold their Python objects
    or torch handles), so other threads running Python meanwhile cannot free it."""
    cdef PyThreadState* saved
    cdef int ret
    if target.release_gil:
        if gil_held:
            saved = PyEval_SaveThread()
            tvmfast_stamp(TVMFAST_STAGE_GIL_RELEASE)
            ret = TVMFFIFunctionCallFromTvmfast(target.handle, args, n, result)
            tvmfast_stamp(TVMFAST_STAGE_CALL)
            PyEval_RestoreThread(saved)
            return ret
    elif not gil_held:
        with gil:
            ret = TVMFFIFunctionCallFromTvmfast(target.handle, args, n, result)
        return ret
    tvmfast_stamp(TVMFAST_STAGE_GIL_RELEASE)
    ret = TVMFFIFunctionCallFromTvmfast(target.handle, args, n, result)
    tvmfast_stamp(TVMFAST_STAGE_CALL)
    return ret


cdef int copy_in(CallContext* ctx, int32_t n) noexcept nogil:
    """The aligned copies (their refusals are Python errors: kept in ctx.error)."""
    with gil:
        try:
            copy_misaligned(ctx, n)
        except BaseException as err:
            Py_INCREF(err)
            ctx.error = <PyObject*>err
            return -1
    return 0
