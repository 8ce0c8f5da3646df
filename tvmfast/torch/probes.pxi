# Every probe of torch's memory layout, and its self-test: learned at first use from
# sample tensors whose values torch reports, and used only where what was learned reads
# every sample exactly as torch's own functions do.  The export's (the THPVariable's
# at::Tensor, the DispatchKeySet's lazy-view bits, toDLPackNonOwning, TensorImpl's
# fields) run in torch's one-time set-up (torch/export.pxi); the native op's (autograd
# metadata, the inference-tensor keys, torch._C._aoti's handle conversion) in its own
# (torch/op_registry.pxi).

cdef list torch_samples(torch):
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    samples = [base, base[1], base.transpose(0, 2), base[:, 1:, ::2], base.half(),
               torch.tensor(3.0), torch.zeros(0), base.to(torch.int8),
               base > 3, torch.nn.Parameter(base.clone())]
    lazy_clone = getattr(torch, "_lazy_clone", None)
    if lazy_clone is not None:
        # A copy-on-write clone: an export for writing must not hand out the storage it
        # shares with `base` (torch >= 2.14's read_only=true would; the exchange API
        # materialises the copy first).
        samples.append(lazy_clone(base))
    return samples


def _learn_torch_layout(torch_module):
    """Find where the at::Tensor sits in the Python object (its TensorImpl pointer
    equals ``t._cdata``) and, inside TensorImpl, the DispatchKeySet word and the
    bits of the lazy neg/conj views (the only word whose XOR between a tensor and its
    view is the same single bit for every sample, a different bit for neg and conj).
    Returns True when the object layout is known."""
    cdef Py_ssize_t offset = sizeof(PyObject)  # THPVariable: PyObject_HEAD, then the at::Tensor
    cdef Py_ssize_t k, found = -1
    cdef uint64_t neg_bit = 0, conj_bit = 0, x
    global tvmfast_thpvariable_tensor_offset
    torch = torch_module
    samples = torch_samples(torch)
    for t in samples:
        if <uint64_t>tvmfast_read_ptr(<PyObject*>t, offset) != <uint64_t>t._cdata:
            return False
    tvmfast_thpvariable_tensor_offset = offset
    neg_pairs = [(t, torch._neg_view(t)) for t in samples if not t.is_complex() and t.dtype != torch.bool]
    conj_pairs = [(t, t.conj()) for t in (torch.randn(3, dtype=torch.cfloat), torch.randn(2, 2, dtype=torch.cdouble))]
    for k in range(0, 512, 8):
        masks = set()
        for t, view in neg_pairs:
            masks.add(tvmfast_torch_keyset(<PyObject*>t, k) ^ tvmfast_torch_keyset(<PyObject*>view, k))
        if len(masks) != 1:
            continue
        neg_bit = masks.pop()
        masks = {tvmfast_torch_keyset(<PyObject*>t, k) ^ tvmfast_torch_keyset(<PyObject*>v, k) for t, v in conj_pairs}
        if len(masks) != 1:
            continue
        conj_bit = masks.pop()
        if (neg_bit == 0 or conj_bit == 0 or neg_bit == conj_bit
                or (neg_bit & (neg_bit - 1)) or (conj_bit & (conj_bit - 1))):
            continue
        found = k
        break
    if found < 0:
        return True
    # Check the bits against torch's own answer on every kind of tensor.
    checks = samples + [v for _, v in neg_pairs] + [v for _, v in conj_pairs] + [t for t, _ in conj_pairs]
    checks += [torch._neg_view(samples[0])[1:], conj_pairs[0][1].resolve_conj()]
    for t in checks:
        x = tvmfast_torch_keyset(<PyObject*>t, found)
        if bool(x & neg_bit) != t.is_neg() or bool(x & conj_bit) != t.is_conj():
            return True
    tvmfast_set_torch_keyset(found, neg_bit | conj_bit)
    return True


def _enable_torch_direct_export(torch_module, Py_ssize_t fn_address, bint with_read_only):
    """Switch torch.Tensor arguments to the direct export if it is provably right here:
    the direct export (fn_address, of the signature with or without read_only) must fill
    every DLTensor field exactly as torch's exchange API does, on sample tensors.
    Returns True when enabled."""
    cdef const DLPackExchangeAPI* api = exchange_api_of(torch_module.Tensor, 0)
    cdef DLTensor direct, reference
    if api == NULL or fn_address == 0 or tvmfast_thpvariable_tensor_offset == 0:
        return False
    tvmfast_set_torch_to_dl(<void*>fn_address, with_read_only)
    for t in torch_samples(torch_module):
        if (tvmfast_torch_export(<PyObject*>t, &direct) != 0
                or api.dltensor_from_py_object_no_sync(<void*>t, &reference) != 0
                or not same_dltensor(&direct, &reference)):
            tvmfast_set_torch_to_dl(NULL, 0)
            return False
    return True


cdef list dense_samples(torch, device):
    """Plain dense tensors of every common dtype, shape, view and creation mode on device,
    for the TensorImpl self-test (each admits its DispatchKeySet to the direct read)."""
    base = torch.arange(60, dtype=torch.float32, device=device).reshape(3, 4, 5)
    samples = [base, base[1:], base[:, 2:, 1:], base.transpose(0, 2), base.expand(2, 3, 4, 5), base[0, 0, 0],
               torch.zeros(0, 3, device=device), torch.ones(2, 1, 3, device=device)[:, :, 1:],
               torch.arange(7, device=device)[3:], torch.zeros(1, 2, 1, 2, 1, device=device)]
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8, torch.int16,
                  torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128):
        samples += [base.to(dtype)[1:, 1:], torch.zeros(5, dtype=dtype, device=device)[2:]]
    samples.append(base.clone().requires_grad_())
    with torch.inference_mode():
        samples += [torch.arange(12.0, device=device).reshape(3, 4)[1:],
                    torch.zeros(3, dtype=torch.int64, device=device)]
    return samples


cdef object guarded_sample(torch):
    t = torch.arange(4.0)
    torch._C._set_throw_on_mutable_data_ptr(t)
    return t


def _learn_tensorimpl(torch_module, list samples):
    """Learn where TensorImpl keeps what a DLTensor needs, by reading sample tensors whose
    values torch reports, then turn the direct read on if it fills every sample's DLTensor
    exactly as toDLPackNonOwning does (field by field, shape/strides pointers included).
    Returns None when on, else the reason it stays off.  Called again for the samples of a
    new device type (their keysets and device mapping are added after the same check)."""
    torch = torch_module
    cdef TvmfastTorchLayout* L = &tvmfast_torch_layout
    cdef TvmfastTorchLayout saved = L[0]
    cdef DLTensor direct, reference
    cdef const char* impl
    cdef const char* storage
    cdef Py_ssize_t k, q
    if tvmfast_torch_to_dl == NULL or tvmfast_torch_keyset_offset < 0:
        return "toDLPackNonOwning or the DispatchKeySet is not known"
    is_cow = getattr(torch._C, "_is_cow_tensor", None)
    plain = [t for t in samples if type(t) is torch.Tensor and t.dim() <= 5 and not (is_cow and is_cow(t))]
    stored = [t for t in plain if t.untyped_storage().nbytes() > 0]
    offsets = [t for t in plain if t.storage_offset() > 0]
    if len(stored) < 8 or len(offsets) < 4:
        return "too few samples"

    def impl_of(t):
        return <uintptr_t>tvmfast_read_ptr(<PyObject*>t, tvmfast_thpvariable_tensor_offset)

    def word(uintptr_t base, Py_ssize_t off):
        return (<int64_t*>(<char*>base + off))[0]

    def unique(candidates, what):
        if len(candidates) != 1:
            raise LookupError(f"{what} found at {len(candidates)} places")
        return candidates[0]

    first = L.enabled == 0
    # Off while learning: the torch calls below let other threads run, and they must not
    # read tensors through a half-learned layout (they take toDLPackNonOwning meanwhile).
    L.enabled = 0
    try:
        if first:
            L.keyset = tvmfast_torch_keyset_offset
            # SizesAndStrides: ndim, then sizes and strides inline (5 each) for ndim <= 5.
            L.sizes = unique([k for k in range(16, L.keyset, 8) if all(
                word(impl_of(t), k) == t.dim()
                and all(word(impl_of(t), k + 8 + 8 * i) == t.shape[i] for i in range(t.dim()))
                and all(word(impl_of(t), k + 48 + 8 * i) == t.stride(i) for i in range(t.dim()))
                for t in plain)], "sizes and strides")
            L.storage_offset = unique([k for k in range(16, L.keyset, 8) if k != L.sizes and all(
                word(impl_of(t), k) == t.storage_offset() for t in plain)], "the storage offset")
            L.storage = unique([k for k in range(8, L.keyset, 8) if all(
                word(impl_of(t), k) == t.untyped_storage()._cdata for t in plain)], "the storage")
            # DataPtr: the data pointer, then its deleter context (for plain CPU memory the
            # same address): the first word that always holds the data pointer.
            L.storage_data = ([q for q in range(8, 64, 8) if all(
                word(<uintptr_t>t.untyped_storage()._cdata, q) == t.untyped_storage().data_ptr()
                for t in stored)] or [0])[0]
            if L.storage_data == 0:
                raise LookupError("the storage's data pointer not found")
            # StorageImpl's has_mutable_data_ptr_check_: the one byte set on a copy-on-write
            # storage (torch._lazy_clone) and on one that refuses writes, clear on plain ones.
            cow = torch._lazy_clone(torch.arange(8.0))
            guarded = torch.arange(8.0)
            torch._C._set_throw_on_mutable_data_ptr(guarded)

            def byte(t, Py_ssize_t q):
                return (<uint8_t*>(<char*><uintptr_t>t.untyped_storage()._cdata + q))[0]

            L.storage_checked = unique([q for q in range(L.storage_data + 8, 96) if byte(cow, q) == 1
                                        and byte(guarded, q) == 1 and all(byte(t, q) == 0 for t in stored)],
                                       "the storage's write check")
            # TypeMeta (uint16) then std::optional<Device> (type, index, engaged) right after.
            by_dtype = {}
            for k in range(16, L.keyset - 2, 2):
                seen = {}
                if all(seen.setdefault(t.dtype, (<uint16_t*>(<char*><uintptr_t>impl_of(t) + k))[0])
                       == (<uint16_t*>(<char*><uintptr_t>impl_of(t) + k))[0] for t in plain):
                    if len(set(seen.values())) == len(seen) >= 10:
                        by_dtype[k] = seen
            L.dtype = unique(list(by_dtype), "the dtype")
            L.device = L.dtype + 2
        for t in plain:
            if tvmfast_torch_export_nonowning(<PyObject*>t, &reference) != 0:
                raise LookupError("toDLPackNonOwning refused a sample")
            impl = <const char*><uintptr_t>impl_of(t)
            index = (<uint16_t*>(impl + L.dtype))[0]
            device_type = (<uint8_t*>(impl + L.device))[0]
            if index >= 64 or device_type >= 8 or (<uint8_t*>(impl + L.device + 2))[0] != 1:
                raise LookupError("a dtype or device outside the table")
            L.dtypes[index] = reference.dtype
            L.itemsize[index] = t.element_size()
            L.dl_device[device_type] = reference.device.device_type
            keyset = (<uint64_t*>(impl + L.keyset))[0]
            if all(L.keysets[i] != keyset for i in range(L.n_keysets)):
                if L.n_keysets == 16:
                    raise LookupError("too many kinds of tensors")
                L.keysets[L.n_keysets] = keyset
                L.n_keysets += 1
        # The check: every sample read directly equals toDLPackNonOwning's, field by field.
        for t in plain:
            if (tvmfast_torch_read(<PyObject*>t, &direct) != 0
                    or tvmfast_torch_export_nonowning(<PyObject*>t, &reference) != 0
                    or not same_dltensor(&direct, &reference)):
                raise LookupError(f"a {t.dtype} sample of shape {tuple(t.shape)} reads differently")
        for t in (torch._lazy_clone(torch.arange(4.0)), guarded_sample(torch)):
            if tvmfast_torch_read(<PyObject*>t, &direct) == 0:
                raise LookupError("a copy-on-write or write-protected tensor was not recognised")
    except Exception as e:
        L[0] = saved
        return f"{type(e).__name__}: {e}"
    L.enabled = 1
    return None


cdef Py_ssize_t _learn_autograd_meta(torch) except -2:
    """The word of TensorImpl that is NULL on a plain tensor and set once it requires grad
    (the autograd metadata pointer), checked on several tensors; -1 if not found."""
    cdef Py_ssize_t k
    samples = [torch.zeros(3), torch.ones(2, 3), torch.ones(2, dtype=torch.int64)]  # no views: they carry it

    def word(t, Py_ssize_t off):
        impl = <const char*><uintptr_t>tvmfast_read_ptr(<PyObject*>t, tvmfast_thpvariable_tensor_offset)
        return (<uint64_t*>(impl + off))[0]

    before = {k: [word(t, k) for t in samples] for k in range(8, tvmfast_torch_layout.keyset, 8)}
    for t in samples:
        if t.is_floating_point():
            t.requires_grad_()
    grads = [t for t in samples if t.requires_grad]
    found = [k for k, words in before.items()
             if all(w == 0 for w in words) and all(word(t, k) != 0 for t in grads)
             and all(word(t, k) == 0 for t in samples if not t.requires_grad)]
    if len(found) != 1:
        return -1
    # A view in grad mode carries it too; an inference tensor does not.
    with torch.inference_mode():
        plain = torch.zeros(4)
    if word(samples[0].detach()[1:], found[0]) == 0 or word(plain, found[0]) != 0:
        return -1
    return found[0]


cdef uint64_t _learn_inference_keyset_mask(torch) except? 0:
    """The DispatchKeySet bits that every tensor but an inference tensor has (autograd and
    ADInplaceOrView), checked against torch's is_inference() on several tensors; 0 if not
    found."""
    cdef uint64_t mask
    normal = [torch.zeros(3), torch.ones(2, 3, dtype=torch.int64)[1:], torch.zeros(2).requires_grad_(),
              torch.zeros(4, dtype=torch.float16).t(), torch.zeros(2, dtype=torch.bool)]
    with torch.inference_mode():
        inference = [torch.zeros(3), torch.ones(2, 3, dtype=torch.int64)[1:], torch.zeros(4, dtype=torch.float16),
                     torch.zeros(2, dtype=torch.bool)]
        inference_view = inference[0][1:]
        inside = torch.zeros(2)[1:]
    # (Views made in inference mode of a normal tensor are normal tensors.)
    with torch.inference_mode():
        normal_view = normal[0][1:]
    samples = normal + inference + [inference_view, inside, normal_view]

    def keyset(t):
        return tvmfast_torch_keyset(<PyObject*>t, tvmfast_torch_layout.keyset)

    mask = keyset(normal[0]) ^ keyset(inference[0])
    if mask == 0 or any(keyset(t) & mask != mask for t in normal):
        return 0
    for t in samples:
        if ((keyset(t) & mask) == 0) != t.is_inference() or ((keyset(t) & mask) not in (0, mask)):
            return 0
    return mask


cdef object _learn_steal_copies(torch):
    """Whether torch._C._aoti's "stealing" conversion copies the at::Tensor of a handle (then
    the caller still owns the handle) or takes it over; None if neither shows."""
    t = torch.zeros(2)
    before = t._use_count()
    handle = tensor_handle_of(t)  # a new at::Tensor: one more use
    made = steal_tensor(handle)
    after = t._use_count()
    if made is not t:
        return None
    if after == before + 1:
        tvmfast_delete_aten_tensor(PyCapsule_GetPointer(handle, NULL))  # still ours
        return True
    return False if after == before else None
