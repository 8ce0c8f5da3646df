/* C++ helpers of tvmfast's hot path that Cython would express more slowly.
 * Included by _core.pyx (declared in _c_api.pxd); nothing here owns Python state. */
#ifndef TVMFAST_HELPERS_H_
#define TVMFAST_HELPERS_H_

#include <Python.h>
#include <dlpack/dlpack.h>
#include <tvm/ffi/c_api.h>

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

#endif  // TVMFAST_HELPERS_H_
