# Errors: every exception tvmfast raises of its own goes through one of the
# raise_* helpers below, in one of these styles:
#   "tvmfast: argument #N: ..."  (something about one argument of a call)
#   "tvmfast: expected N arguments, got M"  (the call as a whole)
#   "tvmfast.<api>: ..."         (misuse of an API: bind, freeze, call_ptrs...)
# Errors raised by the called function itself are TVM-FFI's: they are handed to
# tvm_ffi's own conversion (raise_ffi_error), so they reach Python exactly as
# rt_mod(*args) would raise them.


cdef str describe(PyObject* obj):
    return type(<object>obj).__qualname__


cdef int raise_arg_error(object exc_type, Py_ssize_t pos, str message, object cause=None) except -1:
    """tvmfast: argument #pos: message"""
    err = exc_type(f"tvmfast: argument #{pos}: {message}")
    if cause is not None:
        raise err from cause
    raise err


cdef int raise_api_error(object exc_type, str api, str message) except -1:
    """tvmfast.api: message"""
    raise exc_type(f"tvmfast.{api}: {message}")


cdef int raise_count_error(int expected, Py_ssize_t got) except -1:
    """The call itself has the wrong number of arguments: "tvmfast: expected N arguments, got M"."""
    raise TypeError(f"tvmfast: expected {expected} arguments, got {got}")


cdef object fetch_error():
    """Take the pending Python exception (set by a C API) as an object, or None."""
    cdef PyObject* t = NULL
    cdef PyObject* v = NULL
    cdef PyObject* tb = NULL
    if PyErr_Occurred() == NULL:
        return None
    PyErr_Fetch(&t, &v, &tb)
    PyErr_NormalizeException(&t, &v, &tb)
    if tb != NULL and v != NULL:
        PyException_SetTraceback(v, tb)
    err = <object>v if v != NULL else None
    Py_XDECREF(t)
    Py_XDECREF(v)
    Py_XDECREF(tb)
    return err


cdef int raise_unsupported(PyObject* obj, Py_ssize_t pos) except -1:
    raise_arg_error(
        TypeError, pos,
        f"expected a tensor (torch.Tensor, tvm_ffi.Tensor or a __dlpack__ producer), int, float, "
        f"bool, str, None or a tvm_ffi object; got {describe(obj)}")


cdef int reraise_export_error(PyObject* obj, Py_ssize_t pos, object err=None) except -1:
    """The producer refused to export a tensor (meta device, sparse layout...): its
    exception type (the one rt_mod raises), naming the argument, with the
    producer's reason without its C++ backtrace."""
    if err is None:
        err = fetch_error()
    if err is None:
        raise_arg_error(TypeError, pos, f"{describe(obj)} cannot be passed as a DLPack tensor")
    reason = str(err).split("\n", 1)[0]
    from tvmfast import _torch
    traced = _torch.traced_tensor_kind(<object>obj)
    if traced is not None:
        reason = (f"it is a {traced}, which has no data a TVM function can read; "
                  f"to call the function inside torch.func transforms or compiled code, "
                  f"register it with f.as_torch_op(...)")
    try:
        wrapped = type(err)(f"tvmfast: argument #{pos}: {describe(obj)} cannot be passed as a DLPack tensor: {reason}")
    except Exception:
        wrapped = TypeError(f"tvmfast: argument #{pos}: {describe(obj)} cannot be passed as a DLPack tensor: {reason}")
    raise wrapped from err


# ---------------------------------------------------------------------------
# Errors raised by TVM-FFI: converted by tvm_ffi, as for rt_mod(*args).
# ---------------------------------------------------------------------------
cdef int reraise_raised_error(void* self, const TVMFFIAny* args, int32_t num_args,
                              TVMFFIAny* result) noexcept nogil:
    # The error of the failed call is still in TVM-FFI's thread-local slot;
    # returning -1 lets tvm_ffi's Function.__call__ convert it like any other call.
    return -1


cdef object register_helper(str name, TVMFFISafeCallType fn):
    """Register a C function as a global TVM-FFI function and return it (as tvm_ffi.Function)."""
    cdef TVMFFIObjectHandle handle
    cdef bytes bname = name.encode()
    cdef TVMFFIByteArray cname
    cname.data = bname
    cname.size = len(bname)
    if TVMFFIFunctionCreate(NULL, fn, NULL, &handle) != 0:
        raise_ffi_error()
    ret = TVMFFIFunctionSetGlobal(&cname, handle, 1)
    TVMFFIObjectDecRef(handle)
    if ret != 0:
        raise_ffi_error()
    return tvm_ffi.get_global_func(name)


cdef object _reraise = register_helper("tvmfast._reraise", reraise_raised_error)


cdef int raise_ffi_error() except -1:
    """Raise the error TVM-FFI holds for this thread, converted by tvm_ffi."""
    if PyErr_Occurred() != NULL:
        # EnvErrorAlreadySet (e.g. KeyboardInterrupt seen by TVMFFIEnvCheckSignals):
        # the Python exception is the real one; drop the FFI placeholder.
        drop_raised_error()
        return -1
    _reraise()
    raise RuntimeError("tvmfast: TVM call failed but no error was raised")  # not reached


cdef void drop_raised_error() noexcept:
    cdef TVMFFIObjectHandle err = NULL
    TVMFFIErrorMoveFromRaised(&err)
    if err != NULL:
        TVMFFIObjectDecRef(err)
