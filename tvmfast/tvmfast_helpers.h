/* C++ helpers of tvmfast's hot path that Cython would express more slowly.
 * Included by _core.pyx (declared in _c_api.pxd).
 *
 * Lifetime model of a tensor argument (see also _core.pyx):
 *   Every tensor tvmfast hands to a function is a TvmfastTensor: a real TVM-FFI
 *   Tensor object (TVMFFIObject header followed by a DLTensor, the layout of
 *   ffi::TensorObj), reference counted like any other, whose deleter is ours.
 *   It holds
 *     - a strong reference to the Python object whose memory it describes
 *       (`owner`), so the data stays allocated while the object lives, and
 *     - its own copy of shape and strides (never pointers into the producer),
 *     - or, for a misaligned tensor, an aligned scratch copy of the data that it
 *       owns (`scratch`).
 *   After the call, a tensor nobody else references goes back to a per-thread
 *   pool (no allocation per call).  A callee that kept a reference (an ffi.Array,
 *   a Relax VM result, a Python callback) keeps a valid object: tvmfast drops
 *   its own reference and the deleter releases the owner when the last one goes.
 */
#ifndef TVMFAST_HELPERS_H_
#define TVMFAST_HELPERS_H_

#include <Python.h>
#include <dlpack/dlpack.h>
#include <tvm/ffi/c_api.h>

#include <cstdlib>
#include <cstring>

/* Result of the last call, parked here for tvm_ffi to convert (one per thread). */
static thread_local TVMFFIAny tvmfast_result_stash __attribute__((unused));

/* ------------------------------------------------------------------------- */
/* Direct torch export                                                        */
/* ------------------------------------------------------------------------- */
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
/* 0: exported; -1: torch refused (ask the exchange API for its error); -2: a lazy
 * neg/conj view (refuse it). */
static inline int tvmfast_torch_export(PyObject* obj, DLTensor* out) noexcept {
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

/* ------------------------------------------------------------------------- */
/* TvmfastTensor: the ffi::Tensor tvmfast passes                               */
/* ------------------------------------------------------------------------- */
#define TVMFAST_INLINE_NDIM 6
#define TVMFAST_POOL_MAX 256
static const uint64_t tvmfast_refcount_both_one = (uint64_t(1) << 32) | uint64_t(1);

typedef struct TvmfastTensor {
  TVMFFIObject header;      /* type_index kTVMFFITensor, our deleter */
  DLTensor dl;              /* must follow the header: TVMFFITensorGetDLTensorPtr */
  PyObject* owner;          /* strong reference (or NULL: raw pointers of call_ptrs) */
  void* scratch;            /* aligned copy of a misaligned tensor's data, or NULL */
  void* source;             /* the data the scratch was copied from (copied back if written) */
  size_t scratch_bytes;
  int64_t* heap_dims;       /* shape+strides when ndim > TVMFAST_INLINE_NDIM */
  struct TvmfastTensor* next_free;
  int64_t dims[2 * TVMFAST_INLINE_NDIM];
} TvmfastTensor;

/* Set by an atexit handler: from then on a deleter running late (a tensor kept in
 * some global TVM registry) leaks its owner instead of taking a dying GIL. */
static int tvmfast_python_exiting = 0;
static inline void tvmfast_set_python_exiting() { tvmfast_python_exiting = 1; }

/* The per-thread pool: a plain __thread list (initial-exec TLS: one instruction
 * away, no __tls_get_addr per call), freed at thread exit by a thread_local guard
 * that is set up once per thread, when the pool first allocates. */
#define TVMFAST_TLS __thread __attribute__((tls_model("initial-exec")))
static TVMFAST_TLS TvmfastTensor* tvmfast_pool_head = NULL;
static TVMFAST_TLS int tvmfast_pool_size = 0;

struct TvmfastPoolGuard {
  bool armed = false;
  ~TvmfastPoolGuard() {
    while (tvmfast_pool_head != NULL) {
      TvmfastTensor* t = tvmfast_pool_head;
      tvmfast_pool_head = t->next_free;
      std::free(t->heap_dims);
      std::free(t);
    }
    tvmfast_pool_size = 0;
  }
};
static thread_local TvmfastPoolGuard tvmfast_pool_guard;

static void tvmfast_tensor_deleter(void* self, int flags) {
  TvmfastTensor* t = static_cast<TvmfastTensor*>(self);
  if (flags & kTVMFFIObjectDeleterFlagBitMaskStrong) {
    if (t->owner != NULL) {
      if (!tvmfast_python_exiting && Py_IsInitialized()) {
        PyGILState_STATE gil = PyGILState_Ensure();
        Py_DECREF(t->owner);
        PyGILState_Release(gil);
      }
      t->owner = NULL;
    }
    std::free(t->scratch);
    t->scratch = NULL;
  }
  if (flags & kTVMFFIObjectDeleterFlagBitMaskWeak) {
    std::free(t->heap_dims);
    std::free(t);
  }
}

/* A fresh tensor object with one strong reference (ours), no owner, no data. */
static inline TvmfastTensor* tvmfast_tensor_new() noexcept {
  TvmfastTensor* t = tvmfast_pool_head;
  if (t != NULL) {
    tvmfast_pool_head = t->next_free;
    tvmfast_pool_size -= 1;
  } else {
    tvmfast_pool_guard.armed = true;  /* first allocation on this thread: free the pool at exit */
    t = static_cast<TvmfastTensor*>(std::malloc(sizeof(TvmfastTensor)));
    if (t == NULL) return NULL;
    t->heap_dims = NULL;
  }
  t->header.combined_ref_count = tvmfast_refcount_both_one;
  t->header.type_index = kTVMFFITensor;
  t->header.__padding = 0;
  t->header.deleter = tvmfast_tensor_deleter;
  t->owner = NULL;
  t->scratch = NULL;
  t->source = NULL;
  t->scratch_bytes = 0;
  t->next_free = NULL;
  return t;
}

/* Replace t->dl's shape/strides pointers (the producer's) by t's own copies. */
static inline int tvmfast_tensor_own_dims(TvmfastTensor* t) noexcept {
  int32_t ndim = t->dl.ndim;
  int64_t* dims = t->dims;
  if (ndim > TVMFAST_INLINE_NDIM) {
    std::free(t->heap_dims);
    t->heap_dims = static_cast<int64_t*>(std::malloc(2 * sizeof(int64_t) * ndim));
    if (t->heap_dims == NULL) return -1;
    dims = t->heap_dims;
  }
  const int64_t* shape = t->dl.shape;
  const int64_t* strides = t->dl.strides;
  bool empty = false;
  for (int32_t i = 0; i < ndim; ++i) {
    dims[i] = shape[i];
    empty |= shape[i] == 0;
  }
  t->dl.shape = dims;
  if (strides != NULL) {
    if (empty) {
      /* An empty tensor has no element to address: torch leaves arbitrary strides on
       * it, which TVM's compact-layout check would refuse.  Give it compact ones. */
      int64_t stride = 1;
      for (int32_t i = ndim - 1; i >= 0; --i) {
        dims[ndim + i] = stride;
        stride *= dims[i];
      }
    } else {
      for (int32_t i = 0; i < ndim; ++i) dims[ndim + i] = strides[i];
    }
    t->dl.strides = dims + ndim;
  }
  return 0;
}

/* Bytes from the first to one past the last element a strided tensor touches
 * (0 for an empty tensor). */
static inline size_t tvmfast_span_bytes(const DLTensor* dl) noexcept {
  int64_t last = 0;
  for (int32_t i = 0; i < dl->ndim; ++i) {
    if (dl->shape[i] == 0) return 0;
    int64_t stride = dl->strides != NULL ? dl->strides[i] : 1;
    if (dl->strides == NULL) {
      stride = 1;
      for (int32_t j = i + 1; j < dl->ndim; ++j) stride *= dl->shape[j];
    }
    last += (dl->shape[i] - 1) * (stride < 0 ? -stride : stride);
  }
  size_t elem_bits = size_t(dl->dtype.bits) * dl->dtype.lanes;
  return size_t(last + 1) * ((elem_bits + 7) / 8);
}

/* Point t at an aligned scratch copy of its (CPU) data; copied back after the
 * call if the callee wrote it (tvmfast_tensor_copy_back). */
static inline int tvmfast_tensor_use_scratch(TvmfastTensor* t, size_t alignment) noexcept {
  size_t bytes = tvmfast_span_bytes(&t->dl);
  size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* scratch = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (scratch == NULL) return -1;
  char* source = static_cast<char*>(t->dl.data) + t->dl.byte_offset;
  if (bytes != 0) std::memcpy(scratch, source, bytes);
  t->scratch = scratch;
  t->source = source;
  t->scratch_bytes = bytes;
  t->dl.data = scratch;
  t->dl.byte_offset = 0;
  return 0;
}

static inline void tvmfast_tensor_copy_back(TvmfastTensor* t) noexcept {
  if (t->scratch != NULL && t->source != NULL && t->scratch_bytes != 0 &&
      std::memcmp(t->source, t->scratch, t->scratch_bytes) != 0) {
    std::memcpy(t->source, t->scratch, t->scratch_bytes);
  }
}

/* Right after the call, before its result is converted: write a scratch copy back
 * if the callee changed it, and if the callee kept the tensor (an identity
 * function's result, a container), point it at the caller's memory again, so what
 * it returns aliases the caller's tensor as through rt_mod.  The scratch stays
 * allocated (views the callee made of it may reference this object) until the
 * object is recycled or deleted. */
static inline void tvmfast_tensor_settle(TvmfastTensor* t) noexcept {
  tvmfast_tensor_copy_back(t);
  if (t->header.combined_ref_count != tvmfast_refcount_both_one && t->source != NULL) {
    t->dl.data = t->source;
    t->dl.byte_offset = 0;
    t->source = NULL;
  }
}

/* After the call: give our reference back.  Needs the GIL when t has an owner
 * (call_ptrs' raw tensors have none and release without it).  Alone → recycle
 * (release the owner now); kept by the callee → the last reference's deleter
 * releases the owner. */
static inline void tvmfast_tensor_release(TvmfastTensor* t) noexcept {
  if (t->header.combined_ref_count == tvmfast_refcount_both_one) {
    Py_XDECREF(t->owner);
    t->owner = NULL;
    std::free(t->scratch);
    t->scratch = NULL;
    if (tvmfast_pool_size < TVMFAST_POOL_MAX) {
      t->next_free = tvmfast_pool_head;
      tvmfast_pool_head = t;
      tvmfast_pool_size += 1;
    } else {
      std::free(t->heap_dims);
      std::free(t);
    }
  } else {
    TVMFFIObjectDecRef(&t->header);
  }
}

#endif  // TVMFAST_HELPERS_H_
