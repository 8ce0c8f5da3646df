# Direct torch export: torch.Tensor arguments are filled into DLTensors by
# at::toDLPackNonOwning applied to the at::Tensor inside the Python object (see
# tvmfast_helpers.h), once a self-test on this torch build showed it is right.
# Everything torch-specific that is found in Python lives in the leaf module
# tvmfast._torch, which the core calls (never the other way round).

cdef PyObject* torch_tensor_type = NULL     # torch.Tensor once the direct export is on
cdef bint torch_setup_done = False


cdef void setup_torch_direct_export() except *:
    """Enable the direct export the first time a torch tensor type is seen (so
    importing tvmfast does not import torch).  Any failure leaves the exchange API path."""
    global torch_setup_done
    if torch_setup_done:
        return
    torch_setup_done = True
    import sys
    from tvmfast import _torch
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        _enable_torch_direct_export(torch, _torch.to_dlpack_nonowning_address())
    except Exception:  # the exchange API path works without it
        pass


cdef object torch_current_stream(object obj, int32_t device_type, int32_t device_id):
    from tvmfast import _torch
    return _torch.current_stream(obj, device_type, device_id)


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
    global torch_tensor_type, tvmfast_thpvariable_tensor_offset
    cdef const DLPackExchangeAPI* api = exchange_api_of(torch_module.Tensor, 0)
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
    tp = torch_module.Tensor
    Py_INCREF(tp)  # lives for the process
    torch_tensor_type = <PyObject*>tp
    return True


def _torch_direct_export_enabled():
    return tvmfast_torch_to_dl != NULL
