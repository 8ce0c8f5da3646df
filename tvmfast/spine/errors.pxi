# Errors: every exception tvmfast raises of its own goes through one of the
# raise_* helpers below, in one of these styles:
#   "tvmfast: argument #N: ..."  (something about one argument of a call)
#   "tvmfast: expected N arguments, got M"  (the call as a whole)
#   "tvmfast.<api>: ..."         (misuse of an API: bind, freeze, call_ptrs...)
# Errors raised by the called function itself are TVM-FFI's: raise_ffi_error
# converts them as tvm_ffi does, so they reach Python exactly as rt_mod(*args)
# would raise them.


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


cdef str plural(Py_ssize_t n, str noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


cdef int raise_count_error(int expected, Py_ssize_t got) except -1:
    """The call itself has the wrong number of arguments: "tvmfast: expected N arguments, got M"."""
    raise TypeError(f"tvmfast: expected {plural(expected, 'argument')}, got {got}")


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


cdef int reraise_export_error(PyObject* obj, Py_ssize_t pos, object err=None) except -1:
    """The producer refused to export a tensor (meta device, sparse layout...): its
    exception type (the one rt_mod raises), naming the argument, with the
    producer's reason without its C++ backtrace."""
    if err is None:
        err = fetch_error()
    if err is None:
        raise_arg_error(TypeError, pos, f"{describe(obj)} cannot be passed as a DLPack tensor")
    reason = torch_traced_reason(<object>obj) or str(err).split("\n", 1)[0]
    try:
        wrapped = type(err)(f"tvmfast: argument #{pos}: {describe(obj)} cannot be passed as a DLPack tensor: {reason}")
    except Exception:
        wrapped = TypeError(f"tvmfast: argument #{pos}: {describe(obj)} cannot be passed as a DLPack tensor: {reason}")
    raise wrapped from err


# ---------------------------------------------------------------------------
# Errors raised by TVM-FFI: converted as tvm_ffi converts rt_mod's.
# ---------------------------------------------------------------------------
cdef object _FFIError = tvm_ffi.core.Error


cdef object ffi_error_object():
    """The error TVM-FFI holds for this thread as the exception tvm_ffi raises for rt_mod, not
    raised: the error object moved into a tvm_ffi.core.Error (as tvm_ffi's
    move_from_last_error does), and its py_error(): same type, message, chained cause and
    C++ frames appended to the traceback.  None where raise_ffi_error must raise it
    instead (a Python exception already set, or a tvm_ffi whose layout is not known)."""
    cdef TVMFFIObjectHandle handle = NULL
    if PyErr_Occurred() != NULL:
        return None
    TVMFFIErrorMoveFromRaised(&handle)
    if handle == NULL:
        return RuntimeError("tvmfast: TVM call failed but no error was raised")
    if cobject_handle_offset == 0 or _FFIError.__basicsize__ != _CObject.__basicsize__:
        TVMFFIErrorSetRaised(handle)  # back in the slot, for _reraise()
        TVMFFIObjectDecRef(handle)
        return None
    # The Error wrapper owns the handle from here (CObject.chandle, where tvm_ffi keeps it).
    error = tvmfast_new_instance(_FFIError)
    (<void**>(<char*><PyObject*>error + cobject_handle_offset))[0] = handle
    return error.py_error()


cdef int raise_ffi_error() except -1:
    """Raise the error TVM-FFI holds for this thread as tvm_ffi raises it for rt_mod."""
    if PyErr_Occurred() != NULL:
        # EnvErrorAlreadySet (e.g. KeyboardInterrupt seen by TVMFFIEnvCheckSignals):
        # the Python exception is the real one; drop the FFI placeholder.
        drop_raised_error()
        return -1
    err = ffi_error_object()
    if err is None:
        # tvm_ffi's object layout is not the one known: tvm_ffi itself converts it,
        # through a registered function that fails with the error still raised.
        _reraise()
    raise err


# A failed call's error on its way out of a front door: the door's vectorcall returns it
# (as its result, no exception raised), and the C entry the type's vectorcall slot
# points to (spine/frame.h) raises it.  So the exception leaves tvmfast once, with the
# traceback tvm_ffi gave it and no frame of tvmfast's own (Cython adds one per function
# an exception passes through: each costs microseconds and says nothing to the user).
@cython.final
cdef class CallFailure:
    cdef object error


cdef object call_failure(object error):
    cdef CallFailure failure = CallFailure.__new__(CallFailure)
    failure.error = error
    return failure


cdef PyObject* raise_call_failure(PyObject* failure) noexcept:
    """Set the failure's error as the raised exception (the entry returns NULL next)."""
    cdef object error = (<CallFailure>failure).error
    cdef object error_type = type(error)
    PyErr_SetObject(<PyObject*>error_type, <PyObject*>error)
    return NULL


cdef object reraise_if_failure(object result):
    """A door's result where Python called it without the entry (tp_call with a tuple)."""
    if type(result) is CallFailure:
        raise (<CallFailure>result).error
    return result


cdef void drop_raised_error() noexcept:
    cdef TVMFFIObjectHandle err = NULL
    TVMFFIErrorMoveFromRaised(&err)
    if err != NULL:
        TVMFFIObjectDecRef(err)
