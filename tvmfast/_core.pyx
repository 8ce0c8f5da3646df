# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: freethreading_compatible=False
"""The hot path of tvmfast: Python arguments -> TVMFFIAny array -> TVMFFIFunctionCall.

A call is one vectorcall into ``call_vector``: each argument is classified by an
exact type-pointer compare against a small process-wide cache (torch.Tensor first),
tensors are exported into DLTensors on the C stack (torch directly through
at::toDLPackNonOwning once that is self-tested, other producers through their DLPack
C exchange API), and the kernel is called.  No Python object, tuple or heap block is
created on the way for tensor/int/float/bool/str/None arguments.
"""
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_CheckExact
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memcmp
from libc.stdlib cimport malloc, calloc, free

from tvmfast._c_api cimport *
from tvmfast._python cimport *

cdef extern from *:
    """
    /* Result of the last call, parked here for tvm_ffi to convert (one per thread). */
    static thread_local TVMFFIAny tvmfast_result_stash;

    /* Direct torch export: at::toDLPackNonOwning(const at::Tensor&, DLTensor*) applied
     * to the at::Tensor inside the THPVariable.  torch's exchange-API entry reaches
     * the same function through a pybind11 cast and a GIL-state guard, which cost
     * ~3x more per tensor.  Enabled only after _enable_torch_direct_export() showed,
     * on this torch build, that the object layout is the one assumed and that the
     * result matches the exchange API field by field.  C++ exceptions (meta
     * tensors, unsupported dtypes) are caught here; the caller then asks the
     * exchange API, which raises the proper Python error. */
    typedef void (*tvmfast_torch_to_dl_fn)(const void* tensor, DLTensor* out);
    static tvmfast_torch_to_dl_fn tvmfast_torch_to_dl = NULL;
    static inline void tvmfast_set_torch_to_dl(void* fn) {
      tvmfast_torch_to_dl = reinterpret_cast<tvmfast_torch_to_dl_fn>(fn);
    }
    static Py_ssize_t tvmfast_thpvariable_tensor_offset = 0;
    static inline int tvmfast_torch_export(PyObject* obj, DLTensor* out) noexcept {
      try {
        tvmfast_torch_to_dl((const char*)obj + tvmfast_thpvariable_tensor_offset, out);
        return 0;
      } catch (...) {
        return -1;
      }
    }
    /* Give a type CPython's vectorcall protocol: calls skip the argument tuple.
     * (tp_call stays Cython's __call__, which forwards a tuple's items to it.) */
    static inline void tvmfast_enable_vectorcall(PyTypeObject* tp, Py_ssize_t offset) {
      tp->tp_vectorcall_offset = offset;
      tp->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
      PyType_Modified(tp);
    }
    static inline void* tvmfast_read_ptr(PyObject* obj, Py_ssize_t offset) {
      return *(void* const*)((const char*)obj + offset);
    }
    """
    TVMFFIAny tvmfast_result_stash
    void* tvmfast_torch_to_dl
    void tvmfast_set_torch_to_dl(void* fn)
    Py_ssize_t tvmfast_thpvariable_tensor_offset
    int tvmfast_torch_export(PyObject* obj, DLTensor* out) noexcept
    void* tvmfast_read_ptr(PyObject* obj, Py_ssize_t offset)
    void tvmfast_enable_vectorcall(PyTypeObject* tp, Py_ssize_t offset)

cdef enum:
    # Arguments converted on the C stack; more than this takes the heap path.
    TVMFAST_STACK_ARGS = 64
    # Distinct Python argument types remembered with their converter.
    TYPE_CACHE_SIZE = 32

import tvm_ffi

# ---------------------------------------------------------------------------
# Argument kinds, chosen once per Python type and cached.
# ---------------------------------------------------------------------------
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
cdef object _torch_tensor_type = None
cdef object torch_setup_hook = None
cdef object _current_cuda_stream = None


def _set_current_stream_hook(hook):
    """hook(obj, device_type, device_id) -> stream as int, or None to leave TVM's stream:
    for GPU tensors whose producer has no DLPack C exchange API."""
    global _current_cuda_stream
    _current_cuda_stream = hook


def _set_torch_setup_hook(hook):
    """Called once, with no arguments, the first time an exchange-API tensor type is seen."""
    global torch_setup_hook
    torch_setup_hook = hook
cdef object _CObject = tvm_ffi.core.CObject
from numbers import Integral, Real


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
    global torch_setup_hook
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
    if (kind == KIND_EXCHANGE and torch_setup_hook is not None
            and (getattr(t, "__module__", None) or "").startswith("torch")):
        # First torch tensor type seen: set up torch's direct export once (lazily, so
        # importing tvmfast does not import torch).
        hook, torch_setup_hook = torch_setup_hook, None
        try:
            hook()
        except Exception:  # the exchange API path works without it
            pass
    if kind == KIND_EXCHANGE and tvmfast_torch_to_dl != NULL and issubclass(t, _torch_tensor_type):
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


cdef str describe(PyObject* obj):
    return type(<object>obj).__qualname__


cdef int raise_unsupported(PyObject* obj, Py_ssize_t pos) except -1:
    raise TypeError(
        f"tvmfast: argument #{pos}: expected a tensor (torch.Tensor, tvm_ffi.Tensor or a "
        f"__dlpack__ producer), int, float, bool, str, None or a tvm_ffi object; "
        f"got {describe(obj)}")


cdef inline int note_device(CallState* st, DLTensor* dl, Py_ssize_t pos,
                            const DLPackExchangeAPI* api, PyObject* obj) except -1:
    """Check alignment; record where the tensors live (the first non-CPU one picks the stream)."""
    if ((<uint64_t>dl.data + dl.byte_offset) & st.align_mask) != 0:
        raise_misaligned(dl, pos, st.align_mask + 1)
    if dl.device.device_type == kDLCPU:
        if st.cpu_pos < 0:
            st.cpu_pos = <int32_t>pos
    elif st.device_type < 0:
        st.device_type = dl.device.device_type
        st.device_id = dl.device.device_id
        st.device_pos = <int32_t>pos
        st.stream_api = api
        st.device_obj = <void*>obj
    return 0


cdef int raise_misaligned(DLTensor* dl, Py_ssize_t pos, uint64_t alignment) except -1:
    cdef int i
    for i in range(dl.ndim):
        if dl.shape[i] == 0:
            return 0  # empty tensors have no data to misread
    raise ValueError(
        f"tvmfast: argument #{pos}: data address {<uint64_t>dl.data + dl.byte_offset:#x} is not "
        f"{alignment}-byte aligned. TVM kernels built with default buffers assume aligned data "
        f"and may crash on it (rt_mod does); for kernels whose buffers use offset_factor=1, "
        f"bind(..., alignment=1)")


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


cdef int reraise_export_error(PyObject* obj, Py_ssize_t pos) except -1:
    """The producer refused to export a tensor (meta device, unsupported dtype...)."""
    err = fetch_error()
    raise TypeError(
        f"tvmfast: argument #{pos}: {describe(obj)} cannot be passed as a DLPack tensor"
        + (f": {err}" if err is not None else "")) from err


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
            raise OverflowError(
                f"tvmfast: argument #{pos}: int {<object>obj} does not fit in int64") from None
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
            raise TypeError(f"tvmfast: argument #{pos}: {describe(obj)} holds no object (null handle)")
        out.type_index = (<TVMFFIObject*>handle).type_index
        out.v_ptr = handle
        if out.type_index == kTVMFFITensor:
            note_device(st, <DLTensor*>(<char*>handle + sizeof(TVMFFIObject)), pos, NULL, obj)
    elif kind == KIND_DLPACK:
        # Other producers go through tvm_ffi's own importer: an owned ffi Tensor.
        try:
            tensor = _tvm_ffi_from_dlpack(<object>obj)
        except Exception as e:
            raise TypeError(
                f"tvmfast: argument #{pos}: {describe(obj)} cannot be passed as a DLPack tensor: {e}"
            ) from e
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


cdef dict DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "cuda_host", 10: "rocm", 13: "cuda_managed", 12: "ext_dev"}


cdef str device_str(int32_t device_type, int32_t device_id):
    return f"{DEVICE_NAMES.get(device_type, f'device_type={device_type}')}:{device_id}"


cdef int check_devices(CallState* st, TVMFFIAny* packed, Py_ssize_t n) except -1:
    """All tensors must be on one device once any of them is off the CPU."""
    cdef Py_ssize_t i
    cdef DLTensor* dl
    if st.cpu_pos >= 0:
        raise ValueError(
            f"tvmfast: argument #{st.cpu_pos} is on cpu but argument #{st.device_pos} is on "
            f"{device_str(st.device_type, st.device_id)}; all tensor arguments must be on one device")
    for i in range(n):
        if packed[i].type_index == kTVMFFIDLTensorPtr:
            dl = <DLTensor*>packed[i].v_ptr
        elif packed[i].type_index == kTVMFFITensor:
            dl = <DLTensor*>(<char*>packed[i].v_ptr + sizeof(TVMFFIObject))
        else:
            continue
        if dl.device.device_type != st.device_type or dl.device.device_id != st.device_id:
            raise ValueError(
                f"tvmfast: argument #{i} is on {device_str(dl.device.device_type, dl.device.device_id)} "
                f"but argument #{st.device_pos} is on {device_str(st.device_type, st.device_id)}; "
                f"all tensor arguments must be on one device")
    return 0


# ---------------------------------------------------------------------------
# Results and errors: handed to tvm_ffi so they come out exactly as from rt_mod().
# ---------------------------------------------------------------------------
cdef int take_stashed_result(void* self, const TVMFFIAny* args, int32_t num_args,
                             TVMFFIAny* result) noexcept nogil:
    result[0] = tvmfast_result_stash
    tvmfast_result_stash.type_index = kTVMFFINone
    tvmfast_result_stash.v_int64 = 0
    return 0


cdef int reraise_raised_error(void* self, const TVMFFIAny* args, int32_t num_args,
                              TVMFFIAny* result) noexcept nogil:
    # The error of the failed kernel call is still in TVM-FFI's thread-local slot;
    # returning -1 lets tvm_ffi's Function.__call__ convert it like any other call.
    return -1


cdef object register_helper(str name, TVMFFISafeCallType fn):
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


cdef object _take_result = register_helper("tvmfast._take_result", take_stashed_result)
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


cdef object convert_result(TVMFFIAny* result, CallState* st):
    global tvmfast_result_stash
    cdef int32_t tindex = result.type_index
    if tindex == kTVMFFIInt:
        return result.v_int64
    if tindex == kTVMFFIFloat:
        return result.v_float64
    if tindex == kTVMFFIBool:
        return result.v_int64 != 0
    if tindex == kTVMFFIDLTensorPtr:
        # The function handed back one of the borrowed DLTensors we passed (an
        # identity-like function): return that argument itself.
        return argument_with_dltensor(st, result.v_ptr)
    # Objects (tensors, arrays, strings...): let tvm_ffi build the Python value.  A
    # torch input passed along makes tvm_ffi return torch tensors, zero-copy.
    tvmfast_result_stash = result[0]
    if st.exemplar != NULL:
        return _take_result(<object>st.exemplar)
    return _take_result()


cdef object argument_at(CallState* st, Py_ssize_t pos):
    """The Python object passed at argument position ``pos`` of this call."""
    cdef FrozenFunction frozen
    cdef Py_ssize_t k
    if st.frozen == NULL:
        return <object>st.items[pos]
    frozen = <FrozenFunction>st.frozen
    if pos in frozen.frozen_values:
        return frozen.frozen_values[pos]
    for k in range(frozen.num_dynamic):
        if frozen.dynamic_pos[k] == pos:
            return <object>st.items[k]


cdef object argument_with_dltensor(CallState* st, void* dltensor):
    cdef Py_ssize_t i
    for i in range(st.num_packed):
        if st.packed[i].type_index == kTVMFFIDLTensorPtr and st.packed[i].v_ptr == dltensor:
            return argument_at(st, i)
    raise RuntimeError("tvmfast: the function returned a DLTensor* that is none of its arguments")


cdef bint error_wants_owned_tensors(TVMFFIObjectHandle err) noexcept:
    """True for the type error a C++ function taking ffi::Tensor gives a DLTensor*
    ("Mismatched type on argument #0 ... expected Tensor but got DLTensor*")."""
    cdef TVMFFIErrorCell* cell = <TVMFFIErrorCell*>(<char*>err + sizeof(TVMFFIObject))
    cdef bytes kind = cell.kind.data[:cell.kind.size]
    cdef bytes msg = cell.message.data[:cell.message.size]
    return kind == b"TypeError" and b"DLTensor*" in msg


cdef int call_packed(BoundFunction fn, TVMFFIAny* packed, int32_t n, CallState* st,
                     TVMFFIAny* result) except -2:
    """TVMFFIFunctionCall, with the producer's stream made TVM's around it for GPU tensors.

    Returns 0 on success, -1 when TVM raised (error left in TVM-FFI's slot) and the
    stream, if any, has been restored."""
    cdef int ret
    cdef void* stream = NULL
    cdef TVMFFIStreamHandle prev = NULL
    cdef TVMFFIObjectHandle handle = fn.handle
    cdef bint swap_stream = False
    result.type_index = kTVMFFINone
    result.zero_padding = 0
    result.v_int64 = 0
    if st.device_type >= 0:  # some tensor is off the CPU
        if not st.devices_checked:
            check_devices(st, packed, n)
        if st.stream_api != NULL and st.stream_api.current_work_stream != NULL:
            if st.stream_api.current_work_stream(<DLDeviceType>st.device_type, st.device_id, &stream) != 0:
                return -2  # the producer set a Python exception
            swap_stream = True
        elif _current_cuda_stream is not None and st.device_obj != NULL:
            # A producer without the C exchange API: torch through __dlpack__ gets its
            # current stream from the hook; others (None) leave TVM's stream alone.
            py_stream = _current_cuda_stream(<object>st.device_obj, st.device_type, st.device_id)
            if py_stream is not None:
                stream = <void*><uint64_t>py_stream
                swap_stream = True
        if swap_stream:
            # Usually TVM's stream is already the producer's (the default stream):
            # then one query replaces a set and a restore.
            prev = TVMFFIEnvGetStream(st.device_type, st.device_id)
            swap_stream = prev != stream
            if swap_stream and TVMFFIEnvSetStream(st.device_type, st.device_id, stream, NULL) != 0:
                raise_ffi_error()
    if fn.release_gil:
        with nogil:
            ret = TVMFFIFunctionCall(handle, packed, n, result)
    else:
        ret = TVMFFIFunctionCall(handle, packed, n, result)
    if swap_stream:
        # Restore TVM's stream, also when the call failed.
        TVMFFIEnvSetStream(st.device_type, st.device_id, prev, NULL)
    return 0 if ret == 0 else -1


cdef object finish_call(BoundFunction fn, TVMFFIAny* packed, int32_t n, CallState* st):
    """Call and convert the outcome; st's owned handles are released by the caller."""
    cdef TVMFFIAny result
    cdef TVMFFIObjectHandle err = NULL
    st.packed = packed
    st.num_packed = n
    if call_packed(fn, packed, n, st, &result) == 0:
        if fn.tensor_mode == TENSOR_MODE_UNDECIDED and st.n_dltensor_ptr:
            fn.tensor_mode = TENSOR_MODE_BORROWED
        if result.type_index == kTVMFFINone:
            return None
        return convert_result(&result, st)
    if fn.tensor_mode == TENSOR_MODE_UNDECIDED and st.n_dltensor_ptr and PyErr_Occurred() == NULL:
        TVMFFIErrorMoveFromRaised(&err)
        if err != NULL and error_wants_owned_tensors(err):
            # A C++ function taking ffi::Tensor: switch this function to owned
            # tensors for good and let the caller convert again.
            TVMFFIObjectDecRef(err)
            fn.tensor_mode = TENSOR_MODE_OWNED
            return RETRY_OWNED
        if err != NULL:
            TVMFFIErrorSetRaised(err)
            TVMFFIObjectDecRef(err)
    raise_ffi_error()


cdef object RETRY_OWNED = object()

cdef Py_ssize_t vectorcall_offset_bound = 0
cdef Py_ssize_t vectorcall_offset_frozen = 0


cdef object bound_vectorcall(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames):
    if kwnames != NULL and PyTuple_GET_SIZE(kwnames) != 0:
        raise TypeError("tvmfast: bound functions take positional arguments only")
    if (<BoundFunction>callable).handle == NULL:
        raise TypeError("tvmfast: BoundFunction was not initialized; use tvmfast.bind()")
    return (<BoundFunction>callable).call_vector(args, PyVectorcall_NARGS(nargsf))


cdef object frozen_vectorcall(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames):
    if kwnames != NULL and PyTuple_GET_SIZE(kwnames) != 0:
        raise TypeError("tvmfast: bound functions take positional arguments only")
    if (<FrozenFunction>callable).template == NULL:
        raise TypeError("tvmfast: FrozenFunction was not initialized; use freeze()/prepare()")
    return (<FrozenFunction>callable).call_vector(args, PyVectorcall_NARGS(nargsf))


cdef object resolve_function(obj, name):
    """A tvm_ffi.Function from a module, a function or a library path."""
    import os
    if isinstance(obj, tvm_ffi.Function):
        if name is not None:
            raise TypeError("tvmfast.bind: name= is only for modules and library paths")
        return obj
    if isinstance(obj, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(obj))
        if not os.path.exists(path):
            raise FileNotFoundError(f"tvmfast.bind: no such library: {path}")
        obj = tvm_ffi.load_module(path)
    if isinstance(obj, tvm_ffi.Module):
        if name is None:
            name = getattr(obj, "entry_name", None) or "main"
        try:
            return obj.get_function(name, query_imports=True)
        except AttributeError:
            raise AttributeError(f"tvmfast.bind: the module has no function named {name!r}") from None
    getter = getattr(obj, "__getitem__", None)
    if getter is not None and name is not None:  # e.g. relax.VirtualMachine
        func = getter(name)
        if isinstance(func, tvm_ffi.Function):
            return func
    raise TypeError(
        f"tvmfast.bind: expected a TVM runtime module, a tvm_ffi.Function or a library path; "
        f"got {type(obj).__qualname__}")


cdef class BoundFunction:
    """A TVM function bound for cheap calls: ``f(*args)`` == ``rt_mod(*args)``.

    Create with :func:`tvmfast.bind`.  Tensors (torch or any DLPack producer), int,
    float, bool and None are accepted; TVM's own argument checks still run and its
    errors come out as the same exceptions ``rt_mod(*args)`` raises.
    """

    def __cinit__(self):
        self.vectorcall = <void*>bound_vectorcall
        self.handle = NULL

    def __init__(self, obj, name=None, *, num_args=None, release_gil=False, owned_tensors=None,
                 alignment=64):
        if not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1):
            raise ValueError(f"tvmfast.bind: alignment must be a power of two >= 1, got {alignment!r}")
        self.align_mask = <uint64_t>(alignment - 1)
        self.function = resolve_function(obj, name)
        self.handle = <TVMFFIObjectHandle><uint64_t>self.function.__chandle__()
        self.num_args = -1 if num_args is None else int(num_args)
        self.release_gil = bool(release_gil)
        if owned_tensors is None:
            self.tensor_mode = TENSOR_MODE_UNDECIDED
        else:
            self.tensor_mode = TENSOR_MODE_OWNED if owned_tensors else TENSOR_MODE_BORROWED
        self.seen_num_args = -1

    @property
    def owned_tensors(self):
        """True/False once decided; None until the first call with a tensor."""
        if self.tensor_mode == TENSOR_MODE_UNDECIDED:
            return None
        return self.tensor_mode == TENSOR_MODE_OWNED

    def __call__(self, *args):
        # Only PyObject_Call with a ready tuple lands here; plain calls use vectorcall.
        return bound_vectorcall(<PyObject*>self, <void**>PySequence_Fast_ITEMS(args), len(args), NULL)

    cdef object call_vector(self, void** items, Py_ssize_t n):
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef DLTensor dl[TVMFAST_STACK_ARGS]
        cdef TVMFFIObjectHandle owned[TVMFAST_STACK_ARGS]
        cdef TVMFFIAny* heap_packed
        cdef DLTensor* heap_dl
        cdef TVMFFIObjectHandle* heap_owned
        if self.num_args >= 0 and n != self.num_args:
            raise_count_error(self.num_args, n)
        if n <= TVMFAST_STACK_ARGS:
            ret = self.convert_and_call(items, n, packed, dl, owned)
        else:
            # More arguments than the stack buffers hold: the same, on the heap.
            heap_packed = <TVMFFIAny*>malloc(n * sizeof(TVMFFIAny))
            heap_dl = <DLTensor*>malloc(n * sizeof(DLTensor))
            heap_owned = <TVMFFIObjectHandle*>malloc(n * sizeof(void*))
            try:
                if heap_packed == NULL or heap_dl == NULL or heap_owned == NULL:
                    raise MemoryError()
                ret = self.convert_and_call(items, n, heap_packed, heap_dl, heap_owned)
            finally:
                free(heap_packed)
                free(heap_dl)
                free(heap_owned)
        if ret is RETRY_OWNED:
            return self.call_vector(items, n)
        self.seen_num_args = <int>n
        return ret

    cdef inline object convert_and_call(self, void** items, Py_ssize_t n, TVMFFIAny* packed,
                                        DLTensor* dl, TVMFFIObjectHandle* owned):
        cdef CallState st
        cdef Py_ssize_t i
        init_state(&st, owned, self.align_mask)
        st.items = items
        try:
            for i in range(n):
                convert_arg(<PyObject*>items[i], i, &packed[i], &dl[i], &st, self.tensor_mode)
            return finish_call(self, packed, <int32_t>n, &st)
        finally:
            release_state(&st)

    def freeze(self, frozen):
        """Fix some arguments: ``g = f.freeze({0: a, 3: zeros}); g(x, y)``.

        ``frozen`` maps argument positions to values, converted once here and kept
        alive; the result takes the remaining arguments in order.  Needs
        ``num_args`` (given to :func:`bind`, or learned from a successful call).
        """
        if not isinstance(frozen, dict):
            raise TypeError(f"tvmfast: freeze() takes a dict {{position: value}}, got {type(frozen).__qualname__}")
        cdef int n = self.num_args if self.num_args >= 0 else self.seen_num_args
        if n < 0:
            raise ValueError(
                "tvmfast: freeze() needs the number of arguments: bind(..., num_args=N), "
                "or call the function once first")
        return FrozenFunction(self, frozen, n)

    def prepare(self, *args):
        """Pre-pack every argument: ``p = f.prepare(a, b, c); p()`` calls ``f(a, b, c)``.

        The tensors are kept alive and their DLTensors built once; later changes of
        their *contents* are seen, in-place storage changes (``resize_``, ``set_``)
        are not (a changed shape is detected and raises).
        """
        if self.num_args >= 0 and len(args) != self.num_args:
            raise_count_error(self.num_args, len(args))
        return FrozenFunction(self, dict(enumerate(args)), len(args))

    def as_torch_op(self, name, mutates_args=(), example_args=None):
        """Register this function as a torch custom op (``torch.library``) and return it.

        ``name`` is ``"namespace::op"``; ``mutates_args`` are the positions of the
        tensors the kernel writes (its outputs). Arguments are tensors unless
        ``example_args`` shows ints, floats or bools. The op returns None, like the
        kernel; its fake implementation lets ``torch.compile(..., fullgraph=True)``
        trace through it without a graph break.
        """
        from tvmfast.torch_op import make_torch_op
        return make_torch_op(self, name, mutates_args, example_args)

    def __repr__(self):
        return f"<tvmfast.BoundFunction num_args={self.num_args} release_gil={bool(self.release_gil)}>"


cdef int raise_count_error(int expected, Py_ssize_t got) except -1:
    raise TypeError(f"tvmfast: expected {expected} arguments, got {got}")


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


cdef bint same_dltensor(DLTensor* x, DLTensor* y) noexcept:
    if (x.data != y.data or x.ndim != y.ndim or x.byte_offset != y.byte_offset
            or x.device.device_type != y.device.device_type or x.device.device_id != y.device.device_id
            or x.dtype.code != y.dtype.code or x.dtype.bits != y.dtype.bits
            or x.dtype.lanes != y.dtype.lanes or x.shape != y.shape):
        return False
    if (x.strides == NULL) != (y.strides == NULL):
        return False
    return x.strides == NULL or memcmp(x.strides, y.strides, x.ndim * sizeof(int64_t)) == 0


def _enable_torch_direct_export(torch_module, Py_ssize_t fn_address):
    """Switch torch.Tensor arguments to the direct export if it is provably right here.

    Checks, on sample tensors, that the at::Tensor sits at the assumed place inside
    the Python object (its TensorImpl pointer equals ``t._cdata``) and that the
    direct export fills every DLTensor field exactly as torch's exchange API does.
    Returns True when enabled.
    """
    global tvmfast_torch_to_dl, tvmfast_thpvariable_tensor_offset, _torch_tensor_type
    cdef const DLPackExchangeAPI* api = exchange_api_of(torch_module.Tensor)
    cdef DLTensor direct, reference
    cdef Py_ssize_t offset = sizeof(PyObject)  # THPVariable: PyObject_HEAD, then the at::Tensor
    if api == NULL or fn_address == 0:
        return False
    base = torch_module.arange(24, dtype=torch_module.float32).reshape(2, 3, 4)
    samples = [base, base[1], base.transpose(0, 2), base[:, 1:, ::2], base.half(),
               torch_module.tensor(3.0), torch_module.zeros(0), base.to(torch_module.int8),
               base > 3, torch_module.nn.Parameter(base.clone())]
    for t in samples:
        if <uint64_t>tvmfast_read_ptr(<PyObject*>t, offset) != <uint64_t>t._cdata:
            return False
    tvmfast_set_torch_to_dl(<void*>fn_address)
    tvmfast_thpvariable_tensor_offset = offset
    for t in samples:
        if (tvmfast_torch_export(<PyObject*>t, &direct) != 0
                or api.dltensor_from_py_object_no_sync(<void*>t, &reference) != 0
                or not same_dltensor(&direct, &reference)):
            tvmfast_set_torch_to_dl(NULL)
            return False
    _torch_tensor_type = torch_module.Tensor
    return True


def _torch_direct_export_enabled():
    return tvmfast_torch_to_dl != NULL


def _init_vectorcall():
    cdef BoundFunction b = BoundFunction.__new__(BoundFunction)
    cdef FrozenFunction f = FrozenFunction.__new__(FrozenFunction)
    tvmfast_enable_vectorcall(<PyTypeObject*><PyObject*>BoundFunction,
                              <Py_ssize_t>(<char*>&b.vectorcall - <char*><PyObject*>b))
    tvmfast_enable_vectorcall(<PyTypeObject*><PyObject*>FrozenFunction,
                              <Py_ssize_t>(<char*>&f.vectorcall - <char*><PyObject*>f))

_init_vectorcall()
