/* torch tensors read in C: the direct export of a torch.Tensor argument (from its
 * TensorImpl where the self-test covers it, else at::toDLPackNonOwning).  What is
 * learned here is learned and self-tested by torch/probes.pxi.  Included by _core.pyx
 * (declared in _c_api.pxd). */
#ifndef TVMFAST_TORCH_LAYOUT_H_
#define TVMFAST_TORCH_LAYOUT_H_

#include <Python.h>
#include <dlpack/dlpack.h>

#include <cstdint>

/* at::toDLPackNonOwning applied to the at::Tensor inside the THPVariable.  torch's
 * exchange-API entry reaches the same function through a pybind11 cast and a
 * GIL-state guard, which cost ~3x more per tensor.  Its signature changed in torch
 * 2.14 (a `bool read_only` was added); each signature has its own function type and
 * only the one tvmfast._torch found in this torch is set, so no call goes through a
 * type that does not match the function.  read_only is passed as false, as torch's
 * exchange API does: a copy-on-write tensor is materialised before a kernel that may
 * write it sees its pointer.
 * Enabled only after _enable_torch_direct_export() showed, on this torch build,
 * that the object layout is the one assumed and that the result matches the
 * exchange API field by field.  C++ exceptions (meta tensors, unsupported dtypes)
 * are caught here; the caller then asks the exchange API, which raises the proper
 * Python error. */
typedef void (*tvmfast_torch_to_dl_fn)(const void* tensor, DLTensor* out);              /* <= 2.13 */
typedef void (*tvmfast_torch_to_dl_ro_fn)(const void* tensor, DLTensor* out, bool ro);  /* >= 2.14 */
static tvmfast_torch_to_dl_fn tvmfast_torch_to_dl_2 = NULL;
static tvmfast_torch_to_dl_ro_fn tvmfast_torch_to_dl_3 = NULL;
/* Non-NULL when the direct export is enabled (whichever signature). */
static void* tvmfast_torch_to_dl = NULL;
/* Set (or, with fn NULL, clear) the direct export; with_read_only says which signature fn has. */
static inline void tvmfast_set_torch_to_dl(void* fn, int with_read_only) {
  tvmfast_torch_to_dl_2 = with_read_only ? NULL : reinterpret_cast<tvmfast_torch_to_dl_fn>(fn);
  tvmfast_torch_to_dl_3 = with_read_only ? reinterpret_cast<tvmfast_torch_to_dl_ro_fn>(fn) : NULL;
  tvmfast_torch_to_dl = fn;
}
static Py_ssize_t tvmfast_thpvariable_tensor_offset = 0;
/* torch's lazy negation/conjugation views: DLPack has no field for them, so torch
 * exports such a tensor as if the bit were not set (a silently wrong result).  The
 * bits live in TensorImpl's DispatchKeySet; its offset and the two bits are found
 * and checked by the self-test (-1: unknown, the caller asks torch in Python). */
static Py_ssize_t tvmfast_torch_keyset_offset = -1;
static uint64_t tvmfast_torch_lazy_bits = 0;
static inline void tvmfast_set_torch_keyset(Py_ssize_t offset, uint64_t bits) {
  tvmfast_torch_keyset_offset = offset;
  tvmfast_torch_lazy_bits = bits;
}
/* The DispatchKeySet word of the tensor inside a THPVariable. */
static inline uint64_t tvmfast_torch_keyset(PyObject* obj, Py_ssize_t offset) noexcept {
  const char* impl = *(const char* const*)((const char*)obj + tvmfast_thpvariable_tensor_offset);
  return *(const uint64_t*)(impl + offset);
}
/* The fields of a plain dense tensor read straight from its TensorImpl: what
 * toDLPackNonOwning computes, in a few loads.  Offsets, the dtype table and the set
 * of DispatchKeySets this applies to are learned and checked by the self-test
 * (torch_export.pxi, _learn_tensorimpl): a tensor whose keyset is not one the
 * self-test saw on plain CPU (or, once seen, CUDA) tensors, with more than 5
 * dimensions (sizes kept out of line), an unknown dtype, or a storage whose data
 * pointer torch checks before handing it out for writing (copy-on-write, read-only)
 * takes toDLPackNonOwning instead.  The shape and strides pointers point into the
 * TensorImpl (as toDLPackNonOwning's do); tvmfast copies them into its own object. */
#define TVMFAST_MAX_KEYSETS 16
#define TVMFAST_MAX_DTYPES 64
typedef struct TvmfastTorchLayout {
  int enabled;
  Py_ssize_t keyset;           /* uint64 DispatchKeySet in TensorImpl */
  Py_ssize_t storage;          /* StorageImpl* in TensorImpl */
  Py_ssize_t storage_data;     /* data pointer in StorageImpl */
  Py_ssize_t storage_checked;  /* bool has_mutable_data_ptr_check_ in StorageImpl: set for a
                                  copy-on-write storage, or one that must not be written */
  Py_ssize_t sizes;            /* SizesAndStrides: size_t ndim, then 5 sizes, 5 strides inline */
  Py_ssize_t storage_offset;   /* int64, in elements */
  Py_ssize_t dtype;            /* uint16 TypeMeta index */
  Py_ssize_t device;           /* int8 c10::DeviceType, int8 index */
  int n_keysets;
  uint64_t keysets[TVMFAST_MAX_KEYSETS];
  DLDataType dtypes[TVMFAST_MAX_DTYPES];   /* by TypeMeta index; bits == 0: not learned */
  uint8_t itemsize[TVMFAST_MAX_DTYPES];
  int8_t dl_device[8];                     /* by c10::DeviceType; 0: not learned */
} TvmfastTorchLayout;
static TvmfastTorchLayout tvmfast_torch_layout;

/* From a TensorImpl: 0: read; -1: not a tensor this path covers (use toDLPackNonOwning). */
static inline int tvmfast_torch_read_impl(const char* impl, DLTensor* out) noexcept {
  const TvmfastTorchLayout& L = tvmfast_torch_layout;
  uint64_t keyset = *(const uint64_t*)(impl + L.keyset);
  int k = 0;
  while (k < L.n_keysets && L.keysets[k] != keyset) ++k;
  if (k == L.n_keysets) return -1;
  int64_t ndim = *(const int64_t*)(impl + L.sizes);
  uint16_t dtype = *(const uint16_t*)(impl + L.dtype);
  if (ndim > 5 || dtype >= TVMFAST_MAX_DTYPES || L.dtypes[dtype].bits == 0) return -1;
  uint8_t device_type = *(const uint8_t*)(impl + L.device);
  if (device_type >= 8 || L.dl_device[device_type] == 0) return -1;
  const char* storage = *(const char* const*)(impl + L.storage);
  if (storage == NULL || *(const uint8_t*)(storage + L.storage_checked) != 0) return -1;
  const int64_t* sizes = (const int64_t*)(impl + L.sizes + 8);
  int64_t numel = 1;
  for (int64_t i = 0; i < ndim; ++i) numel *= sizes[i];
  char* data = *(char* const*)(storage + L.storage_data);
  int8_t index = *(const int8_t*)(impl + L.device + 1);
  out->data = numel == 0 ? NULL : data + *(const int64_t*)(impl + L.storage_offset) * L.itemsize[dtype];
  out->device.device_type = static_cast<DLDeviceType>(L.dl_device[device_type]);
  out->device.device_id = index < 0 ? 0 : index;
  out->ndim = static_cast<int32_t>(ndim);
  out->dtype = L.dtypes[dtype];
  out->shape = const_cast<int64_t*>(sizes);
  out->strides = const_cast<int64_t*>(sizes + 5);
  out->byte_offset = 0;
  return 0;
}

/* From the Python object (a THPVariable: its at::Tensor holds the TensorImpl pointer). */
static inline int tvmfast_torch_read(PyObject* obj, DLTensor* out) noexcept {
  return tvmfast_torch_read_impl(
      *(const char* const*)((const char*)obj + tvmfast_thpvariable_tensor_offset), out);
}

/* toDLPackNonOwning on the tensor.  0: exported; -1: torch refused (ask the exchange
 * API for its error); -2: a lazy neg/conj view (refuse it). */
static inline int tvmfast_torch_export_nonowning(PyObject* obj, DLTensor* out) noexcept {
  if (tvmfast_torch_keyset_offset >= 0 &&
      (tvmfast_torch_keyset(obj, tvmfast_torch_keyset_offset) & tvmfast_torch_lazy_bits) != 0) {
    return -2;
  }
  const void* tensor = (const char*)obj + tvmfast_thpvariable_tensor_offset;
  try {
    if (tvmfast_torch_to_dl_3 != NULL) {
      tvmfast_torch_to_dl_3(tensor, out, false);
    } else {
      tvmfast_torch_to_dl_2(tensor, out);
    }
    return 0;
  } catch (...) {
    return -1;
  }
}

/* The direct export of a torch tensor: read from TensorImpl where the self-test covers
 * it, else toDLPackNonOwning.  Same results as tvmfast_torch_export_nonowning. */
static inline int tvmfast_torch_export(PyObject* obj, DLTensor* out) noexcept {
  if (tvmfast_torch_layout.enabled && tvmfast_torch_read(obj, out) == 0) return 0;
  return tvmfast_torch_export_nonowning(obj, out);
}

#endif  // TVMFAST_TORCH_LAYOUT_H_
