# Arguments: each Python argument becomes one TVMFFIAny.  Its kind is chosen once
# per Python type (an exact type-pointer compare against a small process-wide
# cache, the torch tensor type first), and each kind has one converter with one
# signature: convert(obj, pos, kind, api, out, ctx) -> CONVERTED or LEFT_TO_TVM_FFI.
#
# The fast path covers tensors (torch, other DLPack C exchange API producers,
# numpy arrays, tvm_ffi objects) and exact int/float/bool/str/None.  Anything
# else is tvm_ffi's: the converter answers LEFT_TO_TVM_FFI and the whole call is made
# by tvm_ffi itself (same conversion, same result, same error as rt_mod).

cdef enum:
    # Distinct Python argument types remembered with their kind.
    TYPE_CACHE_SIZE = 32
    # What a converter returns.
    CONVERTED = 0
    LEFT_TO_TVM_FFI = 1

cdef enum ArgKind:
    KIND_TVM_FFI = 0       # converted by tvm_ffi (the whole call goes through it)
    KIND_TORCH = 1         # torch.Tensor (+ subclasses): the direct export, else torch's exchange API
    KIND_EXCHANGE = 2      # another producer with a DLPack C exchange API
    KIND_DLPACK = 3        # numpy.ndarray and other __dlpack__ producers: tvm_ffi.from_dlpack
    KIND_FFI_OBJECT = 4    # tvm_ffi objects (Tensor, Shape, Function...), passed as they are
    KIND_INT = 5
    KIND_FLOAT = 6
    KIND_BOOL = 7
    KIND_NONE = 8
    KIND_STR = 9

# Process-wide cache: type -> kind (+ exchange API).  Types are only added under
# the GIL and never removed (each holds a reference for the process).
cdef PyObject* cached_types[TYPE_CACHE_SIZE]
cdef int cached_kinds[TYPE_CACHE_SIZE]
cdef const DLPackExchangeAPI* cached_apis[TYPE_CACHE_SIZE]
cdef int num_cached_types = 0
# The torch tensor type once its direct export is on: one compare in convert_arg.

cdef object _tvm_ffi_from_dlpack = tvm_ffi.from_dlpack
cdef object _CContainerBase = tvm_ffi.core.CContainerBase
cdef object _FFITensor = tvm_ffi.core.Tensor
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
    # Exact types only: subclasses (IntEnum, str subclasses, numpy scalars...) are
    # tvm_ffi's, which knows their protocols.
    if t is bool:
        kind = KIND_BOOL
    elif t is int:
        kind = KIND_INT
    elif t is float:
        kind = KIND_FLOAT
    elif obj == Py_None:
        kind = KIND_NONE
    elif t is str:
        kind = KIND_STR
    elif issubclass(t, _CContainerBase):
        # Containers carry the DLPack exchange API of the tensors they were made from
        # (tvm_ffi converts their elements back lazily): tvm_ffi's own setter keeps that.
        kind = KIND_TVM_FFI
    elif issubclass(t, _CObject):
        kind = KIND_FFI_OBJECT
    elif hasattr(t, "__tvm_ffi_object__"):
        kind = KIND_TVM_FFI  # tvm_ffi's protocol comes before DLPack in its own order
    elif _ndarray_type is not None and t is _ndarray_type:
        kind = KIND_DLPACK
    else:
        api = exchange_api_of(t, pos)
        if api == NULL and hasattr(t, "__dlpack__") and not issubclass(t, Number):
            # Imported as rt_mod imports it, with an error naming the argument.
            kind = KIND_DLPACK
        elif api != NULL:
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
cdef inline DLTensor* tensor_of(TVMFFIAny* value) noexcept:
    """The DLTensor of a kTVMFFITensor value (it follows the object header)."""
    return <DLTensor*>(<char*>value.v_ptr + sizeof(TVMFFIObject))


cdef inline TvmfastTensor* new_tensor(CallContext* ctx) except NULL:
    """A pooled tensor object, recorded in the context first so that ctx_close frees it
    whatever happens."""
    cdef TvmfastTensor* t = tvmfast_tensor_new()
    if t == NULL:
        raise MemoryError()
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
    out.zero_padding = 0
    if kind == KIND_INT:
        out.type_index = kTVMFFIInt
        out.v_int64 = PyLong_AsLongLongAndOverflow(obj, &overflow)
        if overflow != 0:
            return LEFT_TO_TVM_FFI  # beyond int64: tvm_ffi decides (BigInt or its error)
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
            ctx.objects[ctx.n_objects] = out.v_ptr
            ctx.n_objects += 1
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
    elif kind == KIND_DLPACK:
        # tvm_ffi's own importer (as rt_mod does), kept alive for the call; its
        # errors (a consumed or misnamed capsule) keep their type and name the argument.
        try:
            tensor = _tvm_ffi_from_dlpack(<object>obj)
        except Exception as e:
            reraise_export_error(obj, pos, e)
        if ctx.temps == NULL:
            temps = [tensor]
            Py_INCREF(temps)
            ctx.temps = <void*>temps
        else:
            (<list>ctx.temps).append(tensor)
        return convert_ffi_tensor(tensor, obj, pos, out, ctx)
    else:
        return LEFT_TO_TVM_FFI
    return CONVERTED


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
