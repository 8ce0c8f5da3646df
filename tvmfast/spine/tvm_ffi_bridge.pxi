# The bridge to tvm_ffi's Python layer, for what it converts and exposes no C entry
# point for.  tvm_ffi builds the Python object of an FFI object (Array, Map, String,
# Shape, a Function, a tvm_ffi.Tensor...) and converts an error with an unknown object
# layout inside its own module, its wrappers tied to the object.  tvmfast parks such a
# result in this thread's stash and has tvm_ffi convert it through a C function of its own
# that hands the stash over: called as a FieldGetter's getter (take_result, below) or, where
# FieldGetter's layout is not the one read here, registered as a global tvm_ffi function:
#   tvmfast._take_result  returns the result parked in this thread's stash;
#   tvmfast._reraise      fails with the error still raised in TVM-FFI's slot.
# Everything else (tensors, scalars, short strings, big ints, errors) is converted in C.

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
    helper = tvm_ffi.get_global_func(name)
    helper.release_gil = False  # a few instructions: a GIL hand-off would cost more than the call
    return helper


cdef int reraise_raised_error(void* self, const TVMFFIAny* args, int32_t num_args,
                              TVMFFIAny* result) noexcept nogil:
    # The error is still in TVM-FFI's thread-local slot: tvm_ffi's Function.__call__
    # converts it like any other call's.
    return -1


cdef object _reraise = register_helper("tvmfast._reraise", reraise_raised_error)


cdef int take_stashed_result(void* self, const TVMFFIAny* args, int32_t num_args,
                             TVMFFIAny* result) noexcept nogil:
    # Hands tvm_ffi the result parked in this thread's stash (our reference moves to it).
    result[0] = tvmfast_result_stash
    tvmfast_result_stash.type_index = kTVMFFINone
    tvmfast_result_stash.v_int64 = 0
    return 0


cdef object _take_result = register_helper("tvmfast._take_result", take_stashed_result)


# A cheaper way to the same conversion: a tvm_ffi FieldGetter (what a field property of a
# tvm_ffi object calls) whose getter is give_stashed_result.  Its __call__ is a plain
# getter call then tvm_ffi's make_ret, without a Function call's context and argument
# conversion (~40 ns against ~85 ns on a 2-core x86_64 box).  FieldGetter is a Cython
# class: object head, __dict__, `getter` (a C function pointer), `offset` (int64); used
# only once its size shows exactly that, and a call gives back what the stash held.
cdef object stash_getter = None
cdef object stash_getter_args = None  # (a CObject,): its handle is never read


cdef int give_stashed_result(void* field, TVMFFIAny* result) noexcept nogil:
    # As take_stashed_result: our reference to the stashed result moves to tvm_ffi.
    result[0] = tvmfast_result_stash
    tvmfast_result_stash.type_index = kTVMFFINone
    tvmfast_result_stash.v_int64 = 0
    return 0


cdef void learn_field_getter_layout():
    global stash_getter, stash_getter_args, tvmfast_result_stash
    cdef char* fields
    cdef TVMFFIObjectHandle handle
    getter_cls = getattr(tvm_ffi.core, "FieldGetter", None)
    object_cls = getattr(tvm_ffi.core, "Object", None)
    if (getter_cls is None or object_cls is None
            or getter_cls.__basicsize__ != sizeof(PyObject) + 3 * sizeof(void*)
            or getter_cls.__dictoffset__ != sizeof(PyObject) or cobject_handle_offset == 0
            or getattr(getter_cls, "__call__", None) is None):
        return
    try:
        getter = getter_cls.__new__(getter_cls)
        args = (object_cls.__new__(object_cls),)
        fields = <char*><PyObject*>getter + sizeof(PyObject) + sizeof(void*)
        (<void**>fields)[0] = <void*>give_stashed_result
        (<int64_t*>(fields + sizeof(void*)))[0] = 0
        # An int and an object (an Array's handle, with a reference of ours) come back.
        tvmfast_result_stash.type_index = kTVMFFIInt
        tvmfast_result_stash.v_int64 = 1234567
        if tvmfast_tp_call(getter, args) != 1234567:
            return
        sample = tvm_ffi.convert([1, 2])
        handle = cobject_handle(sample)
        TVMFFIObjectIncRef(handle)
        tvmfast_result_stash.type_index = (<TVMFFIObject*>handle).type_index
        tvmfast_result_stash.zero_padding = 0
        tvmfast_result_stash.v_obj = <TVMFFIObject*>handle
        value = tvmfast_tp_call(getter, args)
        if type(value) is not type(sample) or cobject_handle(value) != handle or list(value) != [1, 2]:
            return
    except Exception:  # a tvm_ffi that differs: the registered function it is
        return
    finally:
        release_stash()
    stash_getter = getter
    stash_getter_args = args


cdef inline object take_result():
    """tvm_ffi's Python value of the stashed result (the stash is emptied)."""
    if stash_getter is not None:
        return tvmfast_tp_call(stash_getter, stash_getter_args)
    return _take_result()


cdef char standin_data[64]
cdef dict standins = {}  # id of a DLPack exchange API -> a private 0-element tensor of its producer


cdef object standin_for(const DLPackExchangeAPI* api):
    """A 0-element tensor of the producer behind api, made once and never handed out:
    passed to tvm_ffi's result conversion so that it converts as for rt_mod called with
    that producer's tensors (containers tagged to convert their elements lazily), without
    exporting an argument again after the call (a callback may have changed it)."""
    key = <uintptr_t>api
    standin = standins.get(key)
    if standin is not None:
        return standin
    cdef TvmfastTensor* t = tvmfast_tensor_new()
    cdef DLManagedTensorVersioned* managed = NULL
    cdef void* py_obj = NULL
    if t == NULL:
        raise MemoryError()
    t.dl.data = <void*>standin_data
    t.dl.device.device_type = kDLCPU
    t.dl.device.device_id = 0
    t.dl.ndim = 1
    t.dl.dtype.code = 2  # kDLFloat
    t.dl.dtype.bits = 32
    t.dl.dtype.lanes = 1
    t.dims[0] = 0
    t.dl.shape = t.dims
    t.dl.strides = NULL
    t.dl.byte_offset = 0
    ret = TVMFFITensorToDLPackVersioned(t, &managed)
    tvmfast_tensor_release(t)  # the managed tensor holds its own reference
    if ret != 0:
        raise_ffi_error()
    if api.managed_tensor_to_py_object_no_sync(managed, &py_obj) != 0 or py_obj == NULL:
        managed.deleter(managed)
        raise fetch_error() or RuntimeError("tvmfast: the producer could not import a tensor")
    standin = <object>py_obj
    Py_DECREF(standin)  # the cast took a reference of its own
    standins[key] = standin
    return standin


cdef void release_stash() noexcept:
    """Drop a result tvm_ffi did not take (its conversion failed before the call)."""
    global tvmfast_result_stash
    if tvmfast_result_stash.type_index >= kTVMFFIStaticObjectBegin:
        TVMFFIObjectDecRef(tvmfast_result_stash.v_ptr)
    tvmfast_result_stash.type_index = kTVMFFINone
    tvmfast_result_stash.v_int64 = 0


# tvm_ffi's CObject, the base of every tvm_ffi object type, is a Cython class whose only C
# field is `void* chandle`, right after the object header; tvm_ffi's own argument setter
# reads it there.  tvmfast does the same instead of a Python call to __chandle__() per
# argument, once CObject's size shows exactly that one field and samples agree (otherwise,
# say a future tvm_ffi adds fields, __chandle__() is used).
cdef object _CObject = tvm_ffi.core.CObject
cdef Py_ssize_t cobject_handle_offset = 0


cdef void learn_cobject_layout():
    global cobject_handle_offset
    cdef int checked = 0
    if _CObject.__basicsize__ != sizeof(PyObject) + sizeof(void*):
        return
    try:
        samples = [tvm_ffi.convert([1, 2]), tvm_ffi.convert({"k": 1}), tvm_ffi.convert("x" * 40),
                   tvm_ffi.get_global_func("ffi.String", allow_missing=True)]
        for sample in samples:
            if not isinstance(sample, _CObject):
                continue
            if (<uint64_t>tvmfast_read_ptr(<PyObject*>sample, sizeof(PyObject))
                    != <uint64_t>sample.__chandle__()):
                return
            checked += 1
    except Exception:  # a tvm_ffi that differs: __chandle__() it is
        return
    if checked >= 2:
        cobject_handle_offset = sizeof(PyObject)


learn_cobject_layout()
learn_field_getter_layout()


cdef inline TVMFFIObjectHandle cobject_handle(object obj):
    """The FFI object handle of a tvm_ffi object (NULL for a null handle); the caller holds obj."""
    if cobject_handle_offset != 0:
        return <TVMFFIObjectHandle>tvmfast_read_ptr(<PyObject*>obj, cobject_handle_offset)
    return <TVMFFIObjectHandle><uint64_t>obj.__chandle__()


def _result_bridge():
    """How results tvm_ffi builds reach it: "field getter" or "function"; for tests."""
    return "field getter" if stash_getter is not None else "function"
