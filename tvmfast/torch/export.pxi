# The direct export of torch tensors: a torch.Tensor argument is filled into its DLTensor
# in C (torch/layout.h: read from its TensorImpl where the self-test covers it, else
# at::toDLPackNonOwning on the at::Tensor inside the Python object), once a self-test on
# this torch build showed it is right (torch/probes.pxi).  Everything torch-specific that
# is found in Python lives in the leaf module tvmfast._torch, which the core calls (never
# the other way round).  The spine calls what is here by name; it knows none of torch's
# insides.

cdef PyObject* torch_tensor_type = NULL     # torch.Tensor, once a torch tensor was seen
cdef str torch_direct_export_state = "off (no torch tensor seen yet)"
# The one type whose arguments convert_arg exports inline (torch.Tensor, once the direct
# export is on), and its exchange API.
cdef PyObject* torch_fast_type = NULL
cdef const DLPackExchangeAPI* torch_fast_api = NULL


cdef inline int export_torch_tensor_fast(PyObject* obj, DLTensor* out) noexcept:
    """convert_arg's inline export of a torch_fast_type tensor: 0 exported; else the slow
    path (export_torch_tensor) says why, with torch's own error."""
    return tvmfast_torch_export(obj, out)


cdef int export_torch_tensor(PyObject* obj, Py_ssize_t pos, DLTensor* out) except -2:
    """A torch tensor exported directly: 0; -1 where torch's DLPack exchange API must do it
    (direct export off, or refused: a meta tensor...).  A lazy neg/conj view is refused."""
    cdef int exported = -1
    if tvmfast_torch_to_dl != NULL:
        exported = tvmfast_torch_export(obj, out)
        if exported == -2:
            raise_lazy_view(obj, pos)
    if exported != 0:
        check_torch_lazy_view(obj, pos)
    return exported


cdef void note_torch_type(PyObject* tp, const DLPackExchangeAPI* api) noexcept:
    """classify_type saw a torch tensor type: torch.Tensor itself gets the inline export."""
    global torch_fast_type, torch_fast_api
    if (torch_fast_type == NULL and torch_tensor_type != NULL and tp == torch_tensor_type
            and tvmfast_torch_to_dl != NULL):
        torch_fast_type = tp
        torch_fast_api = api


cdef int torch_tensor_on_gpu(object tensor) except -1:
    """A torch tensor on a GPU: the first one self-tests the TensorImpl read there."""
    if not gpu_layout_tried:
        learn_device_layout(tensor)
    return 0


cdef object torch_traced_reason(object obj):
    """Why a data-less torch tensor (a functorch wrapper, a FakeTensor...) cannot be passed,
    and what to do; None for anything else."""
    from tvmfast import _torch
    traced = _torch.traced_tensor_kind(obj)
    if traced is None:
        return None
    return (f"it is a {traced}, which has no data a TVM function can read; to call the function "
            f"inside torch.func transforms or compiled code, register it with f.as_torch_op(...)")


cdef bint setup_torch_direct_export() except -1:
    """Learn torch's object layout and enable the direct export the first time a
    torch tensor type is seen (so importing tvmfast does not import torch).  Any
    failure leaves the exchange API path (and Python-level lazy-view checks).
    A one-time set-up (once.pxi): other threads wait for it; a call from inside it
    goes on without it (False)."""
    return torch_setup.run(_run_torch_setup)


def _reset_torch_setup():
    """The state before the set-up (for a fork child whose set-up was left half-done):
    nothing learned, so every torch tensor takes the exchange API until it runs again."""
    global torch_direct_export_state, tvmfast_thpvariable_tensor_offset
    tvmfast_set_torch_to_dl(NULL, 0)
    tvmfast_set_torch_keyset(-1, 0)
    memset(&tvmfast_torch_layout, 0, sizeof(TvmfastTorchLayout))
    tvmfast_thpvariable_tensor_offset = 0
    torch_direct_export_state = "off (no torch tensor seen yet)"


cdef OneTimeSetup torch_setup = one_time_setup(_reset_torch_setup)


def _run_torch_setup():
    global torch_tensor_type, torch_direct_export_state
    from tvmfast import _torch
    torch = sys.modules.get("torch")
    if torch is None:
        torch_direct_export_state = "off (torch is not imported)"
        return
    tp = torch.Tensor
    try:
        with _torch.setup_scope(torch):
            # The layout also gives the lazy neg/conj bits, which the exchange API path uses too.
            layout_known = _learn_torch_layout(torch)
            address, signature = _torch.find_to_dlpack_nonowning()
            if not address:
                torch_direct_export_state = f"off ({signature})"
            elif not layout_known:
                torch_direct_export_state = "off (torch.Tensor's object layout is not the one known)"
            elif not _enable_torch_direct_export(torch, address, signature == _torch.SIGNATURES[0][0]):
                torch_direct_export_state = f"off (the self-test of toDLPackNonOwning({signature}) failed)"
            else:
                torch_direct_export_state = f"on (at::toDLPackNonOwning({signature}), self-tested)"
                if os.environ.get("TVMFAST_TORCH_READ", "1") != "0":
                    reason = _learn_tensorimpl(torch, dense_samples(torch, "cpu") + torch_samples(torch))
                    torch_direct_export_state += (
                        "; plain dense tensors read from TensorImpl (self-tested)" if reason is None
                        else f"; TensorImpl reads off ({reason})")
    except Exception as exc:  # the exchange API path works without it
        torch_direct_export_state = f"off (set-up failed: {type(exc).__name__}: {exc})"
    if torch_tensor_type == NULL:
        Py_INCREF(tp)  # lives for the process
        torch_tensor_type = <PyObject*>tp


cdef bint is_torch_tensor_type(type t) except -1:
    """Whether t is torch.Tensor or a subclass of it (by type, wherever it is defined)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    tensor_type = getattr(torch, "Tensor", None)
    return isinstance(tensor_type, type) and issubclass(t, tensor_type)


cdef object torch_current_stream(object obj, int32_t device_type, int32_t device_id):
    from tvmfast import _torch
    return _torch.current_stream(obj, device_type, device_id)


cdef bint storage_holds_elements(object obj, uintptr_t lo, uintptr_t hi) except -1:
    """Whether a torch tensor's storage still holds the bytes [lo, hi) its elements span (a
    misaligned tensor is copied, which reads them; torch can shrink a storage under its
    tensors).  True for anything else."""
    if torch_tensor_type == NULL or not isinstance(obj, <object>torch_tensor_type):
        return True
    from tvmfast import _torch
    return _torch.storage_holds_elements(obj, lo, hi)


cdef int raise_lazy_view(PyObject* obj, Py_ssize_t pos) except -1:
    what = "conjugate" if (<object>obj).is_conj() else "negative"
    fix = "resolve_conj" if what == "conjugate" else "resolve_neg"
    raise_arg_error(
        ValueError, pos,
        f"tensor has its {what} bit set (a lazy view); DLPack cannot express it and the kernel "
        f"would read the values without it: pass t.{fix}()")


cdef int check_torch_lazy_view(PyObject* obj, Py_ssize_t pos) except -1:
    """Refuse a lazy neg/conj torch view on the exchange API path."""
    if tvmfast_torch_keyset_offset >= 0:
        if tvmfast_torch_keyset(obj, tvmfast_torch_keyset_offset) & tvmfast_torch_lazy_bits:
            raise_lazy_view(obj, pos)
    elif (<object>obj).is_neg() or (<object>obj).is_conj():
        raise_lazy_view(obj, pos)
    return 0


cdef bint same_dltensor(DLTensor* x, DLTensor* y) noexcept:
    if (x.data != y.data or x.ndim != y.ndim or x.byte_offset != y.byte_offset
            or x.device.device_type != y.device.device_type or x.device.device_id != y.device.device_id
            or x.dtype.code != y.dtype.code or x.dtype.bits != y.dtype.bits
            or x.dtype.lanes != y.dtype.lanes or x.shape != y.shape):
        return False
    if (x.strides == NULL) != (y.strides == NULL):
        return False
    return x.strides == NULL or memcmp(x.strides, y.strides, x.ndim * sizeof(int64_t)) == 0


cdef bint gpu_layout_tried = False


cdef int learn_device_layout(object tensor) except -1:
    """First torch tensor on a GPU: self-test the direct read on samples made on that
    device (their keysets join the learned ones if every sample reads right)."""
    global torch_direct_export_state, gpu_layout_tried
    torch = sys.modules.get("torch")
    device = tensor.device
    if torch is None or not tvmfast_torch_layout.enabled or device.type != "cuda":
        gpu_layout_tried = True
        return 0
    if torch.cuda.is_current_stream_capturing():
        return 0  # not while a CUDA graph is being captured: at a later call
    gpu_layout_tried = True
    from tvmfast import _torch
    with _torch.setup_scope(torch):
        reason = _learn_tensorimpl(torch, dense_samples(torch, device))
    torch_direct_export_state += (f"; {device.type} tensors too" if reason is None
                                  else f"; {device.type} tensors through toDLPackNonOwning ({reason})")
    return 0


def _torch_direct_export_enabled():
    """Whether torch tensors take the direct export (set up now if torch is imported)."""
    if "torch" in sys.modules:
        setup_torch_direct_export()
    return tvmfast_torch_to_dl != NULL


def _torch_direct_export_state():
    """One line: whether torch tensors take the direct export, with which signature of
    at::toDLPackNonOwning, or why not (set up now if torch is imported)."""
    if "torch" in sys.modules:
        setup_torch_direct_export()
    return torch_direct_export_state


def _torch_lazy_view_check():
    """How lazy neg/conj views are found: 'keyset' (C level) or 'python' (is_neg/is_conj)."""
    return "keyset" if tvmfast_torch_keyset_offset >= 0 else "python"
