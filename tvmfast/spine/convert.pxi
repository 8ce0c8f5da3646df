# Arguments: each Python argument becomes one TVMFFIAny.  Its kind is chosen once
# per Python type (an exact type-pointer compare against a small process-wide
# cache, the torch tensor type first), and each kind has one converter with one
# signature: convert(obj, pos, kind, api, out, ctx) -> CONVERTED or LEFT_TO_TVM_FFI.
#
# tvmfast converts, in C, every kind tvm_ffi converts in C: tensors (torch, other DLPack
# C exchange API producers, numpy arrays, other __dlpack__ producers, tvm_ffi tensors),
# exact int/float/bool/str/bytes/None, tuples (NamedTuples too), lists and dicts (into
# ffi.Array and ffi.Map, element by element, as tvm_ffi does), tvm_ffi objects and
# containers, tvm_ffi.dtype, tvm_ffi.Device, tvm_ffi's str/bytes/Shape proxies and
# ctypes.c_void_p.  What is left (Python callables tvm_ffi wraps per call, subclasses of
# int/float/str/list/dict, ints beyond int64, torch/numpy dtypes, objects of tvm_ffi's
# Python protocols...) is tvm_ffi's: call_converts_itself() sees it before any
# conversion work, and the whole call is then made by tvm_ffi itself (same conversion,
# same result, same error as rt_mod).  Only Python code run during the conversion (a
# __dlpack__ method changing a list passed in the same call) can still leave a value to
# tvm_ffi after conversion has started: a converter then answers LEFT_TO_TVM_FFI and the
# call is handed over all the same.

cdef enum:
    # Distinct Python argument types remembered with their kind.
    TYPE_CACHE_SIZE = 32
    # What a converter returns.
    CONVERTED = 0
    LEFT_TO_TVM_FFI = 1
    # Tuples, lists and dicts nested deeper than this are refused (tvm_ffi converts them by
    # recursion in C++, and crashes on a list that contains itself).
    MAX_NESTING = 64
    # Elements of a sequence converted into a buffer on the C stack; more use the heap.
    STACK_ELEMENTS = 16

cdef enum ArgKind:
    KIND_TVM_FFI = 0       # converted by tvm_ffi (the whole call goes through it)
    KIND_TORCH = 1         # torch.Tensor (+ subclasses): the direct export, else torch's exchange API
    KIND_EXCHANGE = 2      # another producer with a DLPack C exchange API
    KIND_DLPACK = 3        # another __dlpack__ producer: its capsule imported in C (spine/arrays.pxi)
    KIND_FFI_OBJECT = 4    # tvm_ffi objects (Tensor, Shape, Function...), passed as they are
    KIND_INT = 5
    KIND_FLOAT = 6
    KIND_BOOL = 7
    KIND_NONE = 8
    KIND_STR = 9
    KIND_NUMPY = 10        # numpy.ndarray: read in C (spine/arrays.pxi)
    KIND_TUPLE = 11        # tuple and its subclasses (NamedTuple): an ffi.Array
    KIND_LIST = 12         # list (exactly): an ffi.Array of its items at the call
    KIND_DICT = 13         # dict (exactly): an ffi.Map
    KIND_CONTAINER = 14    # tvm_ffi containers (Array, Map, List, Dict): with their DLPack tag
    KIND_DTYPE = 15        # tvm_ffi.dtype
    KIND_DEVICE = 16       # tvm_ffi.Device
    KIND_NATIVE_OBJECT = 17  # tvm_ffi's str/bytes/tuple proxies (String, Bytes, Shape)
    KIND_BYTES = 18        # bytes, bytearray (exactly)
    KIND_OPAQUE_PTR = 19   # ctypes.c_void_p
    KIND_FOREIGN_DTYPE = 20  # torch.dtype, numpy.dtype: the DLDataType tvm_ffi gives each (learned once)

# Process-wide cache: type -> kind (+ exchange API).  Types are only added under
# the GIL and never removed (each holds a reference for the process).
cdef PyObject* cached_types[TYPE_CACHE_SIZE]
cdef int cached_kinds[TYPE_CACHE_SIZE]
cdef const DLPackExchangeAPI* cached_apis[TYPE_CACHE_SIZE]
cdef int num_cached_types = 0
# The torch tensor type once its direct export is on: one compare in convert_arg.

cdef object _ffi_core = tvm_ffi.core
# Whether ints beyond int64 become ffi.BigInt here (libtvm_ffi has BigInt: 0.1.15 and later).
cdef bint big_ints_in_c = tvmfast_bigint_api_init() != 0
cdef object _CContainerBase = tvm_ffi.core.CContainerBase
cdef object _FFITensor = tvm_ffi.core.Tensor
cdef object _PyNativeObject = tvm_ffi.core.PyNativeObject
cdef object _FFIDevice = tvm_ffi.core.Device
cdef object _FFIDataType = tvm_ffi.core.DataType
cdef object _ffi_dtype_type = type(tvm_ffi.dtype("int8"))
cdef object _ctypes_void_p = ctypes.c_void_p
cdef object _ndarray_type = None


cdef const DLPackExchangeAPI* exchange_api_of(object tp, Py_ssize_t pos) except? NULL:
    """The DLPack C exchange API a type declares (a PyCapsule named "dlpack_exchange_api"),
    or NULL if it declares none or one of another DLPack major version.  Anything else
    declared is the producer's bug: tvm_ffi's error type (ValueError), naming the argument."""
    capsule = getattr(tp, "__dlpack_c_exchange_api__", None)
    if capsule is None:
        return NULL
    cdef const DLPackExchangeAPI* api = NULL
    if PyCapsule_IsValid(capsule, "dlpack_exchange_api"):
        api = <const DLPackExchangeAPI*>PyCapsule_GetPointer(capsule, "dlpack_exchange_api")
    else:
        # (tvm_ffi also takes an int as the table's address; tvmfast does not follow an
        # address it cannot check.)
        raise_arg_error(
            ValueError, pos,
            f"{tp.__qualname__}.__dlpack_c_exchange_api__ is not a PyCapsule named "
            f"'dlpack_exchange_api' (got {capsule!r})")
    # Versions with a different major may lay out the table differently.
    if api.header.version.major != DLPACK_MAJOR_VERSION:
        return NULL
    if api.dltensor_from_py_object_no_sync == NULL or api.managed_tensor_from_py_object_no_sync == NULL:
        return NULL
    return api


cdef int classify_type(PyObject* obj, Py_ssize_t pos, const DLPackExchangeAPI** api_out) except -1:
    """The argument kind of type(obj) (and its exchange API), from the cache or computed once."""
    global num_cached_types, _ndarray_type
    cdef PyObject* tp = <PyObject*>Py_TYPE(obj)
    cdef int i
    # Python's own scalars first (elements of a list or tuple are mostly these).
    if tp == <PyObject*>&PyLong_Type:
        return KIND_INT
    if tp == <PyObject*>&PyFloat_Type:
        return KIND_FLOAT
    for i in range(num_cached_types):
        if cached_types[i] == tp:
            api_out[0] = cached_apis[i]
            return cached_kinds[i]
    cdef type t = <type>tp
    cdef int kind = KIND_TVM_FFI
    cdef const DLPackExchangeAPI* api = NULL
    if _ndarray_type is None:
        np = sys.modules.get("numpy")
        if np is not None:
            _ndarray_type = np.ndarray
    # tvm_ffi's own order of checks (TVMFFICyArgSetterFactory), each kind taken over only
    # for the exact types whose conversion tvmfast repeats; subclasses (IntEnum, str and
    # list subclasses, numpy scalars...) are tvm_ffi's, which knows their protocols.
    if obj == Py_None:
        kind = KIND_NONE
    elif issubclass(t, _CContainerBase):
        # Containers carry the DLPack exchange API of the tensors they were made from
        # (tvm_ffi converts their elements back lazily): read where tvm_ffi keeps it.
        kind = KIND_CONTAINER if container_api_offset != 0 else KIND_TVM_FFI
    elif issubclass(t, _CObject):
        kind = KIND_FFI_OBJECT
    elif hasattr(t, "__tvm_ffi_object__"):
        kind = KIND_TVM_FFI  # tvm_ffi's protocol comes before DLPack in its own order
    elif _ndarray_type is not None and t is _ndarray_type:
        kind = KIND_NUMPY
    elif t is bool:
        kind = KIND_BOOL
    elif t is int:
        kind = KIND_INT
    elif t is float:
        kind = KIND_FLOAT
    elif t is str:
        kind = KIND_STR
    else:
        api = exchange_api_of(t, pos)
        if api != NULL:
            kind = KIND_EXCHANGE
            if is_torch_tensor_type(t):
                # torch.Tensor or any subclass, wherever defined (a subclass too may be a
                # lazy neg/conj view).  First one seen: set up torch's direct export once
                # (lazily, so importing tvmfast does not import torch); other threads
                # wait for it to finish.
                kind = KIND_TORCH
                if not setup_torch_direct_export():
                    api_out[0] = api
                    return kind  # a call from inside the set-up: classified again later
        elif hasattr(t, "__cuda_stream__") or issubclass(t, Number):
            kind = KIND_TVM_FFI
        elif hasattr(t, "__dlpack__"):
            kind = KIND_DLPACK
        elif issubclass(t, _ffi_dtype_type):
            # tvm_ffi.dtype or a subclass (tvm_ffi's setter reads its DataType alike).
            kind = KIND_DTYPE if ffi_value_layout_known else KIND_TVM_FFI
        elif issubclass(t, _FFIDevice):
            # tvm_ffi.Device or a subclass (TVM's), whose C struct tvm_ffi's setter reads.
            kind = KIND_DEVICE if ffi_value_layout_known else KIND_TVM_FFI
        elif issubclass(t, _FFIDataType):
            kind = KIND_TVM_FFI
        elif issubclass(t, _PyNativeObject):
            kind = KIND_NATIVE_OBJECT
        elif t is bytes or t is bytearray:
            kind = KIND_BYTES
        elif issubclass(t, (str, bytes, bytearray)):
            kind = KIND_TVM_FFI
        elif issubclass(t, tuple):
            kind = KIND_TUPLE
        elif t is list:
            kind = KIND_LIST
        elif t is dict:
            kind = KIND_DICT
        elif issubclass(t, _ctypes_void_p):
            kind = KIND_OPAQUE_PTR
        elif is_foreign_dtype_type(t):
            kind = KIND_FOREIGN_DTYPE
    api_out[0] = api
    if num_cached_types == TYPE_CACHE_SIZE:
        return kind  # cache full (dozens of distinct types): classified again next time
    Py_INCREF(t)  # cached types live for the process
    cached_types[num_cached_types] = tp
    cached_kinds[num_cached_types] = kind
    cached_apis[num_cached_types] = api
    num_cached_types += 1
    if kind == KIND_TORCH:
        note_torch_type(tp, api)
    return kind


# ---------------------------------------------------------------------------
# Tensors: a TvmfastTensor per tensor argument (see tvmfast_helpers.h).
# ---------------------------------------------------------------------------
cdef inline DLTensor* tensor_of(TVMFFIAny* value) noexcept nogil:
    """The DLTensor of a kTVMFFITensor value (it follows the object header)."""
    return <DLTensor*>(<char*>value.v_ptr + sizeof(TVMFFIObject))


cdef inline TvmfastTensor* new_tensor(CallContext* ctx) except NULL:
    """A pooled tensor object, recorded in the context first so that ctx_close frees it
    whatever happens."""
    cdef TvmfastTensor* t = tvmfast_tensor_new()
    if t == NULL:
        raise MemoryError()
    if ctx.n_tensors == ctx.tensors_cap and ctx_grow(ctx, True) != 0:
        tvmfast_tensor_release(t)
        return NULL
    ctx.tensors[ctx.n_tensors] = t
    ctx.n_tensors += 1
    return t


cdef inline int pass_tensor(TvmfastTensor* t, PyObject* owner, TVMFFIAny* out) except -1:
    """t describes owner's memory: take our copy of its dims and a reference to owner."""
    if tvmfast_tensor_own_dims(t) != 0:
        raise MemoryError()
    Py_INCREF(<object>owner)
    t.owner = owner
    out.type_index = kTVMFFITensor
    out.zero_padding = 0
    out.v_ptr = t
    return 0


cdef int convert_exchange(PyObject* obj, Py_ssize_t pos, int kind, const DLPackExchangeAPI* api,
                          TVMFFIAny* out, CallContext* ctx, TvmfastTensor* t) except -1:
    """A tensor from a DLPack C exchange API producer (torch: the direct export first)."""
    cdef int exported = -1
    if t == NULL:
        t = new_tensor(ctx)
    if kind == KIND_TORCH:
        exported = export_torch_tensor(obj, pos, &t.dl)
    if exported != 0 and api.dltensor_from_py_object_no_sync(<void*>obj, &t.dl) != 0:
        reraise_export_error(obj, pos)
    pass_tensor(t, obj, out)
    ctx.exchange_api = api  # the last producer's, as tvm_ffi: its allocator, result conversion
    return note_tensor(ctx, t, pos, api, obj)


cdef int convert_ffi_tensor(object tensor, PyObject* obj, Py_ssize_t pos, TVMFFIAny* out,
                            CallContext* ctx) except -1:
    """A tvm_ffi.Tensor (given, or imported from a __dlpack__ producer obj): passed as it is,
    or through an aligned scratch copy when the callee assumes alignment it lacks.  obj is
    what picks the stream (NULL for a tvm_ffi.Tensor given as such: like rt_mod, tvmfast
    leaves TVM's current stream as it is)."""
    cdef TVMFFIObjectHandle handle = cobject_handle(tensor)
    cdef DLTensor* dl = <DLTensor*>(<char*>handle + sizeof(TVMFFIObject))
    cdef TvmfastTensor* t
    if is_misaligned(dl, ctx.align_mask):
        t = new_tensor(ctx)
        t.dl = dl[0]
        pass_tensor(t, <PyObject*>tensor, out)
        return note_tensor(ctx, t, pos, NULL, obj)
    out.type_index = kTVMFFITensor
    out.zero_padding = 0
    out.v_ptr = handle
    return record_device(ctx, dl, pos, NULL, obj)


cdef int convert_kind(PyObject* obj, Py_ssize_t pos, int kind, const DLPackExchangeAPI* api,
                      TVMFFIAny* out, CallContext* ctx) except -1:
    """Every kind but the torch tensor type of convert_arg's fast path."""
    cdef TVMFFIObjectHandle handle
    cdef TVMFFIByteArray chars
    cdef Py_ssize_t size
    cdef int overflow = 0
    if kind == KIND_TORCH or kind == KIND_EXCHANGE:
        return convert_exchange(obj, pos, kind, api, out, ctx, NULL)
    if kind == KIND_NUMPY:
        return convert_numpy(obj, pos, out, ctx)
    out.zero_padding = 0
    if kind == KIND_INT:
        out.type_index = kTVMFFIInt
        out.v_int64 = PyLong_AsLongLongAndOverflow(obj, &overflow)
        if overflow != 0:
            if not big_ints_in_c:
                return LEFT_TO_TVM_FFI  # beyond int64 with an older tvm_ffi: its error
            # An ffi.BigInt, as tvm_ffi passes it; the call context holds it.
            if tvmfast_bigint_from_pylong(obj, out) != 0:  # -1: a Python error, raised as it is
                raise_ffi_error()
            ctx_hold_object(ctx, out.v_ptr)
    elif kind == KIND_FLOAT:
        out.type_index = kTVMFFIFloat
        out.v_float64 = PyFloat_AS_DOUBLE(obj)
    elif kind == KIND_BOOL:
        out.type_index = kTVMFFIBool
        out.v_int64 = 1 if obj == Py_True else 0
    elif kind == KIND_NONE:
        out.type_index = kTVMFFINone
        out.v_int64 = 0
    elif kind == KIND_STR:
        # An ffi String (short ones inline), as tvm_ffi passes str: embedded NULs kept.
        chars.data = PyUnicode_AsUTF8AndSize(obj, &size)
        chars.size = size
        if TVMFFIStringFromByteArray(&chars, out) != 0:
            raise_ffi_error()
        if out.type_index >= kTVMFFIStaticObjectBegin:
            ctx_hold_object(ctx, out.v_ptr)
    elif kind == KIND_BYTES:
        if type(<object>obj) is bytes:
            return pass_bytes(PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj), out, ctx)
        return pass_bytes(PyByteArray_AS_STRING(obj), PyByteArray_GET_SIZE(obj), out, ctx)
    elif kind == KIND_FFI_OBJECT:
        handle = cobject_handle(<object>obj)
        if handle == NULL:
            if isinstance(<object>obj, _FFITensor):
                return LEFT_TO_TVM_FFI  # a DLTensor view (a callback's argument): tvm_ffi passes it
            # A moved-from or never-made object: tvm_ffi would pass NULL and crash.
            raise_arg_error(TypeError, pos, f"{describe(obj)} holds no object (null handle)")
        out.type_index = (<TVMFFIObject*>handle).type_index
        if out.type_index == kTVMFFITensor:
            return convert_ffi_tensor(<object>obj, NULL, pos, out, ctx)
        out.v_ptr = handle
    elif kind == KIND_TUPLE or kind == KIND_LIST or kind == KIND_DICT:
        return convert_collection(obj, pos, kind, out, ctx)
    elif kind == KIND_CONTAINER:
        return convert_container(obj, pos, out, ctx)
    elif kind == KIND_DTYPE:
        out.type_index = kTVMFFIDataType
        out.v_int64 = 0
        out.v_dtype = ffi_dtype_of(obj)
    elif kind == KIND_DEVICE:
        out.type_index = kTVMFFIDevice
        out.v_int64 = 0
        out.v_device = (<DLDevice*>(<char*>obj + sizeof(PyObject)))[0]
    elif kind == KIND_NATIVE_OBJECT:
        return convert_native_object(obj, pos, out, ctx)
    elif kind == KIND_FOREIGN_DTYPE:
        code = foreign_dtype_code(<object>obj)
        if code is None:
            return LEFT_TO_TVM_FFI  # a dtype tvm_ffi refuses: its error
        out.type_index = kTVMFFIDataType
        out.v_int64 = 0
        (<uint32_t*>&out.v_dtype)[0] = <uint32_t>code
    elif kind == KIND_OPAQUE_PTR:
        value = (<object>obj).value  # as tvm_ffi reads a ctypes.c_void_p (None: NULL)
        out.type_index = kTVMFFIOpaquePtr
        out.v_ptr = <void*><uintptr_t>(0 if value is None else value)
    elif kind == KIND_DLPACK:
        return convert_dlpack(obj, pos, out, ctx)
    else:
        return LEFT_TO_TVM_FFI
    return CONVERTED


cdef int call_converts_itself(void** items, Py_ssize_t n) except -1:
    """Whether tvm_ffi is to convert (and so make) this call: some argument is of a kind
    tvmfast leaves to it.  Decided before any conversion work, once per call; a torch
    tensor costs one compare."""
    cdef Py_ssize_t i
    cdef PyObject* ancestors[MAX_NESTING]
    for i in range(n):
        if <PyObject*>Py_TYPE(<PyObject*>items[i]) != torch_fast_type:
            if left_to_tvm_ffi(<PyObject*>items[i], i, ancestors, 0):
                return True
    return False


cdef bint left_to_tvm_ffi(PyObject* obj, Py_ssize_t pos, PyObject** ancestors, int depth) except -1:
    """Whether obj (an argument, or an element of one) is a value tvm_ffi converts and
    tvmfast does not.  ancestors[:depth]: the tuples, lists and dicts obj is inside (a
    list that contains itself would have tvm_ffi recurse until it crashes: refused)."""
    cdef const DLPackExchangeAPI* api = NULL
    cdef PyTypeObject* tp = Py_TYPE(obj)
    cdef int kind
    cdef int overflow = 0
    cdef Py_ssize_t i
    cdef TVMFFIObjectHandle handle
    # What containers mostly hold, without a classification call.
    if (tp == &PyFloat_Type or tp == &PyUnicode_Type or tp == &PyBool_Type or obj == Py_None
            or <PyObject*>tp == torch_fast_type or (tp == &PyLong_Type and big_ints_in_c)):
        return False
    kind = classify_type(obj, pos, &api)
    if kind == KIND_TVM_FFI:
        return True
    if kind == KIND_INT:
        if big_ints_in_c:
            return False
        PyLong_AsLongLongAndOverflow(obj, &overflow)
        return overflow != 0
    if kind == KIND_FFI_OBJECT:
        handle = cobject_handle(<object>obj)
        return handle == NULL and isinstance(<object>obj, _FFITensor)
    if kind == KIND_FOREIGN_DTYPE:
        return foreign_dtype_code(<object>obj) is None
    if kind != KIND_TUPLE and kind != KIND_LIST and kind != KIND_DICT:
        return False
    for i in range(depth):
        if ancestors[i] == obj:
            raise_arg_error(ValueError, pos, f"a {describe(obj)} that contains itself cannot be passed")
    if depth == MAX_NESTING:
        raise_arg_error(RecursionError, pos, f"tuples, lists and dicts nested over {MAX_NESTING} deep")
    ancestors[depth] = obj
    if kind == KIND_DICT:
        for key, value in (<dict>obj).items():
            if (left_to_tvm_ffi(<PyObject*>key, pos, ancestors, depth + 1)
                    or left_to_tvm_ffi(<PyObject*>value, pos, ancestors, depth + 1)):
                return True
    elif tp == &PyTuple_Type:
        # A tuple's items cannot change while it is checked (and it is held by the caller).
        for i in range(PyTuple_GET_SIZE(obj)):
            if left_to_tvm_ffi(PyTuple_GET_ITEM(obj, i), pos, ancestors, depth + 1):
                return True
    else:
        for item in <object>obj:
            if left_to_tvm_ffi(<PyObject*>item, pos, ancestors, depth + 1):
                return True
    return False


cdef inline int convert_arg(PyObject* obj, Py_ssize_t pos, TVMFFIAny* out, CallContext* ctx) except -1:
    cdef TvmfastTensor* t
    cdef const DLPackExchangeAPI* api = NULL
    if <PyObject*>Py_TYPE(obj) == torch_fast_type:
        # The common case, inlined: a torch tensor exported directly.
        t = new_tensor(ctx)
        if export_torch_tensor_fast(obj, &t.dl) == 0:
            pass_tensor(t, obj, out)
            ctx.exchange_api = torch_fast_api
            if (t.dl.device.device_type == kDLCPU
                    and ((<uint64_t>t.dl.data + t.dl.byte_offset) & ctx.align_mask) == 0):
                if ctx.cpu_pos < 0:
                    ctx.cpu_pos = <int32_t>pos
                return CONVERTED
            return note_tensor(ctx, t, pos, torch_fast_api, obj)
        # A lazy neg/conj view, or torch refused the direct export (meta tensor...):
        # the slow path says which, with torch's own error.
        return convert_exchange(obj, pos, KIND_TORCH, torch_fast_api, out, ctx, t)
    cdef int kind = classify_type(obj, pos, &api)
    return convert_kind(obj, pos, kind, api, out, ctx)


def _big_ints_in_c():
    """Whether ints beyond int64 are converted here (else tvm_ffi's); for tests."""
    return big_ints_in_c
