# Tuples, lists and dicts (made into ffi.Array and ffi.Map as tvm_ffi makes them for
# rt_mod: each element converted like an argument, then the constructor called), tvm_ffi's
# own containers (passed with the DLPack tag that tells how their tensors convert back),
# tvm_ffi's proxies of str/bytes/tuple (String, Bytes, Shape), tvm_ffi.dtype and
# tvm_ffi.Device.  All in C; tvm_ffi's Python classes are read where tvm_ffi's own
# argument setter reads them, once the layout has been checked (learn_ffi_value_layouts).
#
# Elements are passed as they are, like rt_mod passes them: no aligned copy (the callee
# of a tuple of tensors reads them through the container, as it does for rt_mod), and
# they take no part in the one-device check of the arguments; a GPU tensor inside picks
# the call's stream when no argument does (as tvm_ffi does).
#
# Owners: the container the constructor returns is held by the call context (our
# reference), the elements' tensors and strings too; the container holds its own
# references to them, so a callee that keeps it keeps valid objects.

cdef TVMFFIObjectHandle array_constructor = NULL       # ffi.Array
cdef TVMFFIObjectHandle map_constructor = NULL         # ffi.Map
cdef TVMFFIObjectHandle find_non_cpu_device = NULL     # ffi.ContainerFindFirstNonCPUDevice
# Where tvm_ffi's Python objects keep what their setter reads (0: not known, tvm_ffi's).
cdef Py_ssize_t container_api_offset = 0    # CContainerBase._dlpack_exchange_api
cdef bint ffi_value_layout_known = False    # DataType.cdtype, Device.cdevice after the header
cdef bint ffi_tensor_layout_known = False   # Tensor: chandle, then `DLTensor* cdltensor`
cdef bint device_results_in_c = False       # tvm_ffi makes a new Device for a Device result


cdef TVMFFIObjectHandle global_function(str name):
    """A global TVM-FFI function, held for the process (NULL if this tvm_ffi has none)."""
    cdef TVMFFIObjectHandle handle = NULL
    cdef bytes bname = name.encode()
    cdef TVMFFIByteArray cname
    cname.data = bname
    cname.size = len(bname)
    if TVMFFIFunctionGetGlobal(&cname, &handle) != 0:
        drop_raised_error()
        return NULL
    return handle


cdef void learn_ffi_value_layouts():
    global array_constructor, map_constructor, find_non_cpu_device
    global container_api_offset, ffi_value_layout_known, ffi_tensor_layout_known
    cdef DLDataType* dtype
    cdef DLDevice* device
    array_constructor = global_function("ffi.Array")
    map_constructor = global_function("ffi.Map")
    find_non_cpu_device = global_function("ffi.ContainerFindFirstNonCPUDevice")
    if cobject_handle_offset == 0:
        return
    try:
        # CContainerBase: CObject's chandle, then `const DLPackExchangeAPI* _dlpack_exchange_api`.
        sample = tvm_ffi.convert([1, 2])
        if (_CContainerBase.__basicsize__ == cobject_handle_offset + 2 * sizeof(void*)
                and isinstance(sample, _CContainerBase)
                and tvmfast_read_ptr(<PyObject*>sample, cobject_handle_offset + sizeof(void*)) == NULL
                and array_constructor != NULL and map_constructor != NULL):
            container_api_offset = cobject_handle_offset + sizeof(void*)
        # DataType and Device: one C struct right after the object header.
        if (_FFIDataType.__basicsize__ == sizeof(PyObject) + 8
                and _FFIDevice.__basicsize__ == sizeof(PyObject) + 8):
            samples_agree = True
            for text, code, bits, lanes in (("float16", 2, 16, 1), ("int8x4", 0, 8, 4), ("bool", 6, 8, 1)):
                dt = tvm_ffi.dtype(text)._tvm_ffi_dtype
                dtype = <DLDataType*>(<char*><PyObject*>dt + sizeof(PyObject))
                samples_agree &= dtype.code == code and dtype.bits == bits and dtype.lanes == lanes
            for name, device_type, device_id in (("cuda", 2, 3), ("cpu", 1, 0)):
                dev = tvm_ffi.device(name, device_id)
                device = <DLDevice*>(<char*><PyObject*>dev + sizeof(PyObject))
                samples_agree &= device.device_type == device_type and device.device_id == device_id
            ffi_value_layout_known = samples_agree
        # A Device result is made in C as tvm_ffi makes one: a new object (an older tvm_ffi gives
        # an equal argument back itself: then its result conversion stays tvm_ffi's).
        global device_results_in_c
        echo = tvm_ffi.get_global_func("testing.echo", allow_missing=True)
        sample_device = tvm_ffi.device("cpu", 0)
        device_results_in_c = echo is None or echo(sample_device) is not sample_device
        # Tensor: CObject's chandle, then the DLTensor pointer tvm_ffi reads.
        tensor = sample_ffi_tensor()
        if (_FFITensor.__basicsize__ == cobject_handle_offset + 2 * sizeof(void*)
                and tvmfast_read_ptr(<PyObject*>tensor, cobject_handle_offset + sizeof(void*))
                == <void*>(<char*>cobject_handle(tensor) + sizeof(TVMFFIObject))):
            ffi_tensor_layout_known = True
    except Exception:  # a tvm_ffi that differs: these kinds stay tvm_ffi's
        container_api_offset = 0
        ffi_value_layout_known = False
        ffi_tensor_layout_known = False


cdef object sample_ffi_tensor():
    """A tvm_ffi.Tensor made by tvm_ffi itself (its result conversion) of a 1-element tensor."""
    global tvmfast_result_stash
    cdef TvmfastTensor* t = tvmfast_tensor_new()
    if t == NULL:
        raise MemoryError()
    t.dl.data = <void*>standin_data
    t.dl.device.device_type = kDLCPU
    t.dl.device.device_id = 0
    t.dl.ndim = 1
    t.dl.dtype.code = 2  # kDLFloat
    t.dl.dtype.bits = 32
    t.dl.dtype.lanes = 1
    t.dims[0] = 1
    t.dl.shape = t.dims
    t.dl.strides = NULL
    t.dl.byte_offset = 0
    tvmfast_result_stash.type_index = kTVMFFITensor
    tvmfast_result_stash.zero_padding = 0
    tvmfast_result_stash.v_ptr = t  # our reference moves to the result
    try:
        return take_result()
    finally:
        release_stash()


learn_ffi_value_layouts()


cdef inline DLDataType ffi_dtype_of(PyObject* obj) except *:
    """A tvm_ffi.dtype's DLDataType (kept in its DataType, as tvm_ffi's setter reads it)."""
    dt = (<object>obj)._tvm_ffi_dtype
    if type(dt) is not _FFIDataType:
        raise TypeError(f"tvm_ffi.dtype {<object>obj!r} holds {type(dt).__qualname__}, not a DataType")
    return (<DLDataType*>(<char*><PyObject*>dt + sizeof(PyObject)))[0]


# torch and numpy dtypes: passed as the DLDataType tvm_ffi's own setter gives each, asked of
# tvm_ffi once per dtype (a registered function that reports the DLDataType it was given).
cdef int report_dtype(void* self, const TVMFFIAny* args, int32_t num_args, TVMFFIAny* result) noexcept nogil:
    if num_args == 1 and args[0].type_index == kTVMFFIDataType:
        result.type_index = kTVMFFIInt
        result.zero_padding = 0
        result.v_int64 = (<const uint32_t*>&args[0].v_dtype)[0]
    return 0


cdef object _dtype_code = register_helper("tvmfast._dtype_code", report_dtype)
cdef dict foreign_dtype_codes = {}  # torch / numpy dtype -> DLDataType bits (int), or None: tvm_ffi's


cdef bint is_foreign_dtype_type(type t) except -1:
    torch = sys.modules.get("torch")
    if torch is not None and t is torch.dtype:
        return True
    np = sys.modules.get("numpy")
    return np is not None and issubclass(t, np.dtype)


cdef object foreign_dtype_code(object dtype):
    try:
        return foreign_dtype_codes[dtype]
    except KeyError:
        pass
    try:
        code = _dtype_code(dtype)
    except Exception:  # tvm_ffi refuses it: the call is tvm_ffi's, with its error
        code = None
    if type(code) is not int:
        code = None
    if len(foreign_dtype_codes) < 1024:
        foreign_dtype_codes[dtype] = code
    return code


cdef int convert_collection(PyObject* obj, Py_ssize_t pos, int kind, TVMFFIAny* out,
                            CallContext* ctx) except -1:
    """A tuple or list (an ffi.Array of its items) or a dict (an ffi.Map of its items)."""
    cdef TVMFFIAny stack_items[STACK_ELEMENTS]
    cdef TVMFFIAny* items = stack_items
    cdef TVMFFIAny result
    cdef Py_ssize_t i, size
    cdef PyObject* key
    cdef PyObject* value
    cdef Py_ssize_t cursor = 0
    cdef int outcome = CONVERTED
    cdef TVMFFIObjectHandle constructor = array_constructor
    if constructor == NULL:
        return LEFT_TO_TVM_FFI
    if ctx.depth >= MAX_NESTING:  # grown so by Python code during the conversion
        raise_arg_error(RecursionError, pos, f"tuples, lists and dicts nested over {MAX_NESTING} deep")
    if kind == KIND_TUPLE:
        seq = <object>obj
    elif kind == KIND_LIST:
        if Py_TYPE(obj) == &PyList_Type and list_items_inert(obj):
            # Converted in place: such items' conversion calls no Python code and allocates no
            # object the garbage collector tracks (so no collection, no __del__ runs), and the GIL
            # is held throughout: nothing can change the list, or free an item, meanwhile.
            seq = <object>obj
        else:
            seq = PyList_AsTuple(<object>obj)  # its items at this moment, as tvm_ffi takes tuple(list)
    else:
        constructor = map_constructor
        pairs = []  # its items at this moment, key then value, as tvm_ffi passes them to ffi.Map
        while PyDict_Next(<object>obj, &cursor, &key, &value):
            pairs.append(<object>key)
            pairs.append(<object>value)
        seq = tuple(pairs)
    size = PySequence_Fast_GET_SIZE(seq)
    if size > STACK_ELEMENTS:
        items = <TVMFFIAny*>malloc(size * sizeof(TVMFFIAny))
        if items == NULL:
            raise MemoryError()
    try:
        outcome = convert_elements(seq, pos, items, ctx)
        if outcome == CONVERTED:
            result.type_index = kTVMFFINone
            result.zero_padding = 0
            result.v_int64 = 0
            if TVMFFIFunctionCall(constructor, items, <int32_t>size, &result) != 0:
                raise_ffi_error()
            ctx_hold_object(ctx, result.v_ptr)
            out[0] = result
    finally:
        if items != stack_items:
            free(items)
    return outcome


cdef bint list_items_inert(PyObject* obj) noexcept:
    """Whether every item of the list obj is an exact int, float, bool, str or None: kinds whose
    conversion (convert_kind: C reads, TVM-FFI strings and BigInts) runs no Python code and
    makes no GC-tracked object, so the list can be converted in place (no tuple copy)."""
    cdef Py_ssize_t i
    cdef PyObject** items = PySequence_Fast_ITEMS(<object>obj)
    cdef PyTypeObject* tp
    for i in range(PySequence_Fast_GET_SIZE(<object>obj)):
        tp = Py_TYPE(items[i])
        if not (tp == &PyLong_Type or tp == &PyFloat_Type or tp == &PyUnicode_Type or tp == &PyBool_Type
                or items[i] == Py_None):
            return False
    return True


cdef int convert_elements(object seq, Py_ssize_t pos, TVMFFIAny* items, CallContext* ctx) except -1:
    """Convert seq's items into items[], as elements (see the top of this file): the call's
    device state is the arguments' alone again afterwards."""
    cdef Py_ssize_t i
    cdef PyObject** elements = PySequence_Fast_ITEMS(seq)
    cdef int outcome = CONVERTED
    cdef uint64_t align_mask = ctx.align_mask
    cdef int32_t cpu_pos = ctx.cpu_pos
    cdef int32_t device_type = ctx.device_type
    cdef int32_t device_id = ctx.device_id
    cdef int32_t device_pos = ctx.device_pos
    cdef const DLPackExchangeAPI* stream_api = ctx.stream_api
    cdef void* device_obj = ctx.device_obj
    ctx.align_mask = 0
    ctx.depth += 1
    try:
        # A tuple (or a subclass: its own items), or a list of inert items (list_items_inert).
        for i in range(PySequence_Fast_GET_SIZE(seq)):
            if convert_arg(elements[i], pos, &items[i], ctx) == LEFT_TO_TVM_FFI:
                outcome = LEFT_TO_TVM_FFI
                break
    finally:
        ctx.depth -= 1
        if ctx.device_type != device_type and ctx.nested_device_type < 0:
            ctx.nested_device_type = ctx.device_type
            ctx.nested_device_id = ctx.device_id
            ctx.nested_stream_api = ctx.stream_api
        ctx.align_mask = align_mask
        ctx.cpu_pos = cpu_pos
        ctx.device_type = device_type
        ctx.device_id = device_id
        ctx.device_pos = device_pos
        ctx.stream_api = stream_api
        ctx.device_obj = device_obj
    return outcome


cdef int convert_container(PyObject* obj, Py_ssize_t pos, TVMFFIAny* out, CallContext* ctx) except -1:
    """A tvm_ffi container, with its DLPack tag as tvm_ffi's setter passes it: the call's
    tensors convert back through it, and a GPU tensor inside picks the stream."""
    cdef TVMFFIAny scan_arg
    cdef TVMFFIAny scan_result
    cdef TVMFFIObjectHandle handle = cobject_handle(<object>obj)
    cdef const DLPackExchangeAPI* api
    if handle == NULL:
        raise_arg_error(TypeError, pos, f"{describe(obj)} holds no object (null handle)")
    out.type_index = (<TVMFFIObject*>handle).type_index
    out.zero_padding = 0
    out.v_ptr = handle
    api = <const DLPackExchangeAPI*>tvmfast_read_ptr(obj, container_api_offset)
    if api == NULL:
        return CONVERTED
    if ctx.exchange_api == NULL:
        ctx.exchange_api = api
    if (ctx.device_type < 0 and ctx.nested_device_type < 0 and api.current_work_stream != NULL
            and find_non_cpu_device != NULL):
        scan_arg = out[0]
        scan_result.type_index = kTVMFFINone
        scan_result.zero_padding = 0
        scan_result.v_int64 = 0
        if TVMFFIFunctionCall(find_non_cpu_device, &scan_arg, 1, &scan_result) != 0:
            raise_ffi_error()
        if scan_result.type_index == kTVMFFIDevice and scan_result.v_device.device_type != kDLCPU:
            ctx.nested_device_type = scan_result.v_device.device_type
            ctx.nested_device_id = scan_result.v_device.device_id
            ctx.nested_stream_api = api
    return CONVERTED


cdef int convert_native_object(PyObject* obj, Py_ssize_t pos, TVMFFIAny* out, CallContext* ctx) except -1:
    """tvm_ffi's String, Bytes, Shape...: the FFI object they cache, as tvm_ffi passes them (a
    String or Bytes that caches none is passed as its text)."""
    cdef TVMFFIObjectHandle handle
    cached = (<object>obj)._tvm_ffi_cached_object
    if cached is None:
        if isinstance(<object>obj, str):
            return convert_kind(obj, pos, KIND_STR, NULL, out, ctx)
        if isinstance(<object>obj, bytes):
            return pass_bytes(PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj), out, ctx)
        raise ValueError(f"_tvm_ffi_cached_object is None for {type(<object>obj)}")
    handle = cobject_handle(cached)
    if handle == NULL:
        raise_arg_error(TypeError, pos, f"{describe(obj)} holds no object (null handle)")
    # Our own reference: the proxy's cache could be replaced by Python code during the call.
    TVMFFIObjectIncRef(handle)
    ctx_hold_object(ctx, handle)
    out.type_index = (<TVMFFIObject*>handle).type_index
    out.zero_padding = 0
    out.v_ptr = handle
    return CONVERTED


cdef int pass_bytes(const char* data, Py_ssize_t size, TVMFFIAny* out, CallContext* ctx) except -1:
    """An ffi Bytes (short ones inline) of a copy of data, as tvm_ffi passes bytes."""
    cdef TVMFFIByteArray chars
    chars.data = data
    chars.size = size
    if TVMFFIBytesFromByteArray(&chars, out) != 0:
        raise_ffi_error()
    if out.type_index >= kTVMFFIStaticObjectBegin:
        ctx_hold_object(ctx, out.v_ptr)
    return CONVERTED
