# Arguments: each Python argument becomes one TVMFFIAny.  Its kind is chosen once
# per Python type (an exact type-pointer compare against a small process-wide
# cache, the torch tensor type first) and each kind has one converter.

cdef enum:
    # Arguments converted on the C stack; more than this takes the heap path.
    TVMFAST_STACK_ARGS = 64
    # Distinct Python argument types remembered with their converter.
    TYPE_CACHE_SIZE = 32

cdef enum ArgKind:
    KIND_UNSUPPORTED = 0
    KIND_EXCHANGE = 1      # producer with a DLPack C exchange API (torch.Tensor)
    KIND_FFI_OBJECT = 2    # tvm_ffi objects (tvm_ffi.Tensor, Shape, Function...)
    KIND_DLPACK = 3        # any other __dlpack__ producer (numpy, cupy, jax...)
    KIND_INT = 4
    KIND_FLOAT = 5
    KIND_BOOL = 6
    KIND_NONE = 7
    KIND_TORCH = 8         # torch.Tensor (+ subclasses) through the direct export
    KIND_STR = 9           # str, passed as a borrowed UTF-8 C string

cdef enum TensorMode:
    TENSOR_MODE_UNDECIDED = 0   # try DLTensor* first; learn from the first call
    TENSOR_MODE_BORROWED = 1    # function accepts DLTensor* (TIR kernels)
    TENSOR_MODE_OWNED = 2       # function needs ffi::Tensor objects

# Process-wide cache: type -> kind (+ exchange API).  Slot 0 is torch.Tensor when
# torch provides the exchange capsule, so the common case is one compare.
cdef PyObject* cached_types[TYPE_CACHE_SIZE]
cdef int cached_kinds[TYPE_CACHE_SIZE]
cdef const DLPackExchangeAPI* cached_apis[TYPE_CACHE_SIZE]
cdef int num_cached_types = 0
cdef PyObject* fast_exchange_type = NULL
cdef const DLPackExchangeAPI* fast_exchange_api = NULL
cdef bint fast_exchange_is_torch = False   # fast_exchange_type takes the direct torch export

cdef object _tvm_ffi_from_dlpack = tvm_ffi.from_dlpack
cdef object _CObject = tvm_ffi.core.CObject


cdef const DLPackExchangeAPI* exchange_api_of(object tp):
    """The usable DLPack C exchange API of a type, or NULL."""
    capsule = getattr(tp, "__dlpack_c_exchange_api__", None)
    if capsule is None or not PyCapsule_CheckExact(capsule):
        return NULL
    cdef const DLPackExchangeAPI* api = <const DLPackExchangeAPI*>PyCapsule_GetPointer(
        capsule, "dlpack_exchange_api")
    if api == NULL:
        return NULL
    # Versions with a different major may lay out the table differently.
    if api.header.version.major != DLPACK_MAJOR_VERSION:
        return NULL
    if api.dltensor_from_py_object_no_sync == NULL or api.managed_tensor_from_py_object_no_sync == NULL:
        return NULL
    return api


cdef int classify_type(PyObject* obj, const DLPackExchangeAPI** api_out) except -1:
    """The argument kind of type(obj) (and its exchange API), from the cache or computed once."""
    global num_cached_types, fast_exchange_type, fast_exchange_api, fast_exchange_is_torch
    cdef PyObject* tp = <PyObject*>Py_TYPE(obj)
    cdef int i
    for i in range(num_cached_types):
        if cached_types[i] == tp:
            api_out[0] = cached_apis[i]
            return cached_kinds[i]
    cdef type t = <type>tp
    cdef int kind = KIND_UNSUPPORTED
    cdef const DLPackExchangeAPI* api = NULL
    if t is bool:
        kind = KIND_BOOL
    elif issubclass(t, Integral):      # int, IntEnum, numpy integers (via __index__)
        kind = KIND_INT
    elif issubclass(t, Real):          # float, numpy floats (via __float__)
        kind = KIND_FLOAT
    elif obj == Py_None:
        kind = KIND_NONE
    elif t is str:
        kind = KIND_STR
    elif issubclass(t, _CObject):
        kind = KIND_FFI_OBJECT
    else:
        api = exchange_api_of(t)
        if api != NULL:
            kind = KIND_EXCHANGE
        elif hasattr(t, "__dlpack__"):
            kind = KIND_DLPACK
    if kind == KIND_EXCHANGE and (getattr(t, "__module__", None) or "").startswith("torch"):
        # First torch tensor type seen: set up torch's direct export once (lazily, so
        # importing tvmfast does not import torch).
        setup_torch_direct_export()
    if kind == KIND_EXCHANGE and tvmfast_torch_to_dl != NULL and issubclass(t, <object>torch_tensor_type):
        kind = KIND_TORCH
    api_out[0] = api
    if num_cached_types == TYPE_CACHE_SIZE:
        return kind  # cache full (dozens of distinct types): classified again next time
    Py_INCREF(t)  # cached types live for the process
    cached_types[num_cached_types] = tp
    cached_kinds[num_cached_types] = kind
    cached_apis[num_cached_types] = api
    num_cached_types += 1
    if (kind == KIND_EXCHANGE or kind == KIND_TORCH) and fast_exchange_type == NULL:
        fast_exchange_type = tp
        fast_exchange_api = api
        fast_exchange_is_torch = kind == KIND_TORCH
    return kind



cdef int convert_exchange(PyObject* obj, Py_ssize_t pos, const DLPackExchangeAPI* api,
                          TVMFFIAny* out, DLTensor* dl, CallState* st,
                          int tensor_mode, bint torch_direct) except -1:
    cdef DLManagedTensorVersioned* managed
    cdef TVMFFIObjectHandle handle
    if tensor_mode != TENSOR_MODE_OWNED:
        if torch_direct and tvmfast_torch_export(obj, dl) == 0:
            pass
        elif api.dltensor_from_py_object_no_sync(<void*>obj, dl) != 0:
            reraise_export_error(obj, pos)
        out.type_index = kTVMFFIDLTensorPtr
        out.zero_padding = 0
        out.v_ptr = dl
        st.n_dltensor_ptr += 1
    else:
        if api.managed_tensor_from_py_object_no_sync(<void*>obj, &managed) != 0:
            reraise_export_error(obj, pos)
        if TVMFFITensorFromDLPackVersioned(managed, 0, 0, &handle) != 0:
            if managed.deleter != NULL:
                managed.deleter(managed)
            raise_ffi_error()
        st.owned[st.n_owned] = handle
        st.n_owned += 1
        dl[0] = managed.dl_tensor
        out.type_index = kTVMFFITensor
        out.zero_padding = 0
        out.v_ptr = handle
    if st.exemplar == NULL:
        st.exemplar = <void*>obj
    note_device(st, dl, pos, api, obj)
    return 0



cdef int convert_slow(PyObject* obj, Py_ssize_t pos, int kind, const DLPackExchangeAPI* api,
                      TVMFFIAny* out, DLTensor* dl, CallState* st, int tensor_mode) except -1:
    """Every kind but the cached exchange type."""
    cdef TVMFFIObjectHandle handle
    if kind == KIND_EXCHANGE or kind == KIND_TORCH:
        return convert_exchange(obj, pos, api, out, dl, st, tensor_mode, kind == KIND_TORCH)
    out.zero_padding = 0
    if kind == KIND_INT:
        out.type_index = kTVMFFIInt
        try:
            out.v_int64 = PyLong_AsLongLong(obj)
        except OverflowError:
            raise_arg_error(OverflowError, pos, f"int {<object>obj} does not fit in int64")
    elif kind == KIND_FLOAT:
        out.type_index = kTVMFFIFloat
        out.v_float64 = <double>(<object>obj)
    elif kind == KIND_BOOL:
        out.type_index = kTVMFFIBool
        out.v_int64 = 1 if obj == Py_True else 0
    elif kind == KIND_NONE:
        out.type_index = kTVMFFINone
        out.v_int64 = 0
    elif kind == KIND_STR:
        # Valid while the str lives, i.e. for the whole call (the caller holds it).
        out.type_index = kTVMFFIRawStr
        out.v_ptr = <void*>PyUnicode_AsUTF8AndSize(obj, NULL)
    elif kind == KIND_FFI_OBJECT:
        handle = <TVMFFIObjectHandle><uint64_t>(<object>obj).__chandle__()
        if handle == NULL:
            raise_arg_error(TypeError, pos, f"{describe(obj)} holds no object (null handle)")
        out.type_index = (<TVMFFIObject*>handle).type_index
        out.v_ptr = handle
        if out.type_index == kTVMFFITensor:
            note_device(st, <DLTensor*>(<char*>handle + sizeof(TVMFFIObject)), pos, NULL, obj)
    elif kind == KIND_DLPACK:
        # Other producers go through tvm_ffi's own importer: an owned ffi Tensor.
        try:
            tensor = _tvm_ffi_from_dlpack(<object>obj)
        except Exception as e:
            raise_arg_error(TypeError, pos, f"{describe(obj)} cannot be passed as a DLPack tensor: {e}", e)
        if st.temps == NULL:
            temps = [tensor]
            Py_INCREF(temps)
            st.temps = <void*>temps
        else:
            (<list>st.temps).append(tensor)
        handle = <TVMFFIObjectHandle><uint64_t>tensor.__chandle__()
        out.type_index = kTVMFFITensor
        out.v_ptr = handle
        note_device(st, <DLTensor*>(<char*>handle + sizeof(TVMFFIObject)), pos, NULL, obj)
    else:
        raise_unsupported(obj, pos)
    return 0


cdef inline int convert_arg(PyObject* obj, Py_ssize_t pos, TVMFFIAny* out, DLTensor* dl,
                            CallState* st, int tensor_mode) except -1:
    if <PyObject*>Py_TYPE(obj) == fast_exchange_type:
        # The common case, inlined: a torch tensor exported directly (once).
        if (fast_exchange_is_torch and tensor_mode != TENSOR_MODE_OWNED
                and tvmfast_torch_export(obj, dl) == 0):
            out.type_index = kTVMFFIDLTensorPtr
            out.zero_padding = 0
            out.v_ptr = dl
            st.n_dltensor_ptr += 1
            if st.exemplar == NULL:
                st.exemplar = <void*>obj
            if (dl.device.device_type == kDLCPU
                    and ((<uint64_t>dl.data + dl.byte_offset) & st.align_mask) == 0):
                if st.cpu_pos < 0:
                    st.cpu_pos = <int32_t>pos
                return 0
            return note_device(st, dl, pos, fast_exchange_api, obj)
        # Owned mode, or torch refused the export: the exchange API (and its error).
        return convert_exchange(obj, pos, fast_exchange_api, out, dl, st, tensor_mode, False)
    cdef const DLPackExchangeAPI* api = NULL
    cdef int kind = classify_type(obj, &api)
    return convert_slow(obj, pos, kind, api, out, dl, st, tensor_mode)


cdef inline void init_state(CallState* st, TVMFFIObjectHandle* owned, uint64_t align_mask) noexcept:
    st.align_mask = align_mask
    st.device_type = -1
    st.device_id = 0
    st.device_pos = -1
    st.cpu_pos = -1
    st.stream_api = NULL
    st.exemplar = NULL
    st.n_owned = 0
    st.owned = owned
    st.n_dltensor_ptr = 0
    st.temps = NULL
    st.items = NULL
    st.frozen = NULL
    st.packed = NULL
    st.num_packed = 0
    st.devices_checked = 0
    st.device_obj = NULL


cdef inline void release_state(CallState* st) noexcept:
    cdef int32_t i
    for i in range(st.n_owned):
        TVMFFIObjectDecRef(st.owned[i])
    st.n_owned = 0
    if st.temps != NULL:
        Py_DECREF(<object>st.temps)
        st.temps = NULL

