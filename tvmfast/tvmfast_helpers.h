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
 *     - for a misaligned CPU tensor, an aligned copy of the data that it owns
 *       (`scratch`; the rule is below, "Misaligned CPU data").
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
#include <cstdint>
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

/* Stage timing, for `python -m bench.stages` only.  In a build with -DTVMFAST_TRACE each
 * stamp adds the clock ticks since the previous stamp to its stage's counter (process-wide
 * counters, meant to be read by one benchmarking thread); in every other build the stamps
 * are empty inline functions and the call path is unchanged. */
enum TvmfastStage {
  TVMFAST_STAGE_START = 0,   /* counts calls; the clock starts */
  TVMFAST_STAGE_OPEN,        /* the call context opened */
  TVMFAST_STAGE_CONVERT,     /* the arguments converted (tensors exported) */
  TVMFAST_STAGE_DEVICES,     /* devices checked, the stream picked, misaligned data copied */
  TVMFAST_STAGE_ENV,         /* TVM's stream and allocator made the producer's */
  TVMFAST_STAGE_GIL_RELEASE, /* the GIL released (0 with release_gil=False) */
  TVMFAST_STAGE_CALL,        /* TVMFFIFunctionCall */
  TVMFAST_STAGE_GIL_ACQUIRE, /* the GIL taken back */
  TVMFAST_STAGE_RESULT,      /* the environment restored, the result converted */
  TVMFAST_STAGE_CLOSE,       /* the call's tensors released */
  TVMFAST_NUM_STAGES
};
static uint64_t tvmfast_stage_ticks[TVMFAST_NUM_STAGES];
#ifdef TVMFAST_TRACE
#define TVMFAST_TRACE_ENABLED 1
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t tvmfast_stage_clock() noexcept { return __rdtsc(); }
#else
#include <chrono>
static inline uint64_t tvmfast_stage_clock() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch()).count();
}
#endif
static uint64_t tvmfast_stage_last;
static inline void tvmfast_stamp(int stage) noexcept {
  uint64_t now = tvmfast_stage_clock();
  tvmfast_stage_ticks[stage] += stage == TVMFAST_STAGE_START ? 1 : now - tvmfast_stage_last;
  tvmfast_stage_last = now;
}
#else
#define TVMFAST_TRACE_ENABLED 0
static inline uint64_t tvmfast_stage_clock() noexcept { return 0; }
static inline void tvmfast_stamp(int stage) noexcept { (void)stage; }
#endif

/* Every call tvmfast makes goes through this one frame.  TVM-FFI cuts the C++
 * backtrace of an error at the FFI boundary, which it recognises by a frame whose
 * symbol starts with "TVMFFIFunctionCall", or at the Python interpreter's frames;
 * TVMFFIFunctionCall itself enters the callee by a tail call (its frame is gone), so
 * without this frame tvmfast's own frames would be added to every error's traceback
 * (symbolised from its debug information, which costs microseconds), unlike rt_mod's.
 * Not inlined, not a tail call (the empty asm after it), so the frame exists. */
extern "C" {
static __attribute__((noinline)) int TVMFFIFunctionCallFromTvmfast(TVMFFIObjectHandle func, TVMFFIAny* args,
                                                                   int32_t num_args, TVMFFIAny* result) {
  int ret = TVMFFIFunctionCall(func, args, num_args, result);
  __asm__ volatile("" ::: "memory");
  return ret;
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
  void* torch_handle;       /* or an owned at::Tensor* (AtenTensorHandle) of a native torch op's
                               argument, released with tvmfast_delete_aten_tensor (no GIL needed) */
  void* scratch;            /* aligned copy of a misaligned tensor's data (owned), or NULL */
  void* pristine;           /* inside scratch: the data as copied, to see what the callee changed */
  void* source;             /* the caller's data the copy was taken from (written back) */
  size_t scratch_bytes;
  uint32_t shared_slots;    /* other argument slots of the call passing this same object */
  DLManagedTensorVersioned* source_keeper; /* the producer's own reference to the source memory
                                              while a copy of it exists (or NULL) */
  int64_t* heap_dims;       /* shape+strides when ndim > TVMFAST_INLINE_NDIM */
  int64_t dims[2 * TVMFAST_INLINE_NDIM];
} TvmfastTensor;

/* torch's aoti_torch_delete_tensor_object, set when native torch ops are enabled. */
static int32_t (*tvmfast_delete_aten_tensor)(void* handle) = NULL;

static inline void tvmfast_tensor_drop_torch_handle(TvmfastTensor* t) noexcept {
  if (t->torch_handle != NULL) {
    tvmfast_delete_aten_tensor(t->torch_handle);
    t->torch_handle = NULL;
  }
}

/* Set by an atexit handler: from then on a deleter running late (a tensor kept in
 * some global TVM registry) leaks its owner instead of taking a dying GIL. */
static int tvmfast_python_exiting = 0;
static inline void tvmfast_set_python_exiting() { tvmfast_python_exiting = 1; }

/* The per-thread pool: a stack of free objects in one heap block, reached through a
 * plain __thread pointer (initial-exec TLS: one instruction away, no __tls_get_addr per
 * call; the block is on the heap because static TLS space is scarce).  A stack rather
 * than a linked list: taking k objects reads one or two cache lines, not a chain of k
 * dependent loads (which, with caches cold after a GPU launch, is k cache misses in a
 * row).  Freed at thread exit by a thread_local guard set up once per thread, when the
 * pool is made. */
#define TVMFAST_TLS __thread __attribute__((tls_model("initial-exec")))
typedef struct TvmfastPool {
  int size;
  TvmfastTensor* items[TVMFAST_POOL_MAX];
} TvmfastPool;
static TVMFAST_TLS TvmfastPool* tvmfast_pool = NULL;

struct TvmfastPoolGuard {
  bool armed = false;
  ~TvmfastPoolGuard() {
    TvmfastPool* pool = tvmfast_pool;
    tvmfast_pool = NULL;
    if (pool == NULL) return;
    for (int i = 0; i < pool->size; ++i) {
      std::free(pool->items[i]->heap_dims);
      std::free(pool->items[i]);
    }
    std::free(pool);
  }
};
static thread_local TvmfastPoolGuard tvmfast_pool_guard;

/* Give back the producer's reference to memory a misaligned copy was taken from. */
static inline void tvmfast_tensor_drop_keeper(TvmfastTensor* t) noexcept {
  if (t->source_keeper != NULL) {
    if (t->source_keeper->deleter != NULL) t->source_keeper->deleter(t->source_keeper);
    t->source_keeper = NULL;
  }
}

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
    tvmfast_tensor_drop_torch_handle(t);
    std::free(t->scratch);
    t->scratch = NULL;
    tvmfast_tensor_drop_keeper(t);
  }
  if (flags & kTVMFFIObjectDeleterFlagBitMaskWeak) {
    std::free(t->heap_dims);
    std::free(t);
  }
}

/* A fresh tensor object with one strong reference (ours), no owner, no data. */
static inline TvmfastTensor* tvmfast_tensor_new() noexcept {
  TvmfastPool* pool = tvmfast_pool;
  TvmfastTensor* t;
  if (pool != NULL && pool->size > 0) {
    t = pool->items[--pool->size];
  } else {
    if (pool == NULL) {
      /* First object on this thread: make its pool (freed with the thread). */
      pool = static_cast<TvmfastPool*>(std::malloc(sizeof(TvmfastPool)));
      if (pool != NULL) {
        pool->size = 0;
        tvmfast_pool = pool;
        tvmfast_pool_guard.armed = true;
      }
    }
    t = static_cast<TvmfastTensor*>(std::malloc(sizeof(TvmfastTensor)));
    if (t == NULL) return NULL;
    t->heap_dims = NULL;
  }
  t->header.combined_ref_count = tvmfast_refcount_both_one;
  t->header.type_index = kTVMFFITensor;
  t->header.__padding = 0;
  t->header.deleter = tvmfast_tensor_deleter;
  t->owner = NULL;
  t->torch_handle = NULL;
  t->scratch = NULL;
  t->pristine = NULL;
  t->source = NULL;
  t->scratch_bytes = 0;
  t->shared_slots = 0;
  t->source_keeper = NULL;
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

/* ------------------------------------------------------------------------- */
/* Misaligned CPU data: the aligned copy                                       */
/* ------------------------------------------------------------------------- */
/* The rule (see _core.pyx, "Lifetime model"): a CPU tensor whose data is not
 * aligned as the callee assumes is handed over as an aligned copy with the same
 * shape, strides and dtype (so TVM's own checks see what rt_mod would pass), only
 * where that copy is indistinguishable from the caller's memory for a kernel:
 *   - only its elements are copied and written back, never the gaps between them
 *     (another argument or other data may live there); negative strides are fine;
 *   - the bytes it spans overlap no other tensor argument of the call, except the
 *     very same elements passed again (an in-place k(x, x)), which then share one
 *     copy as they share memory for rt_mod;
 *   - the callee does not keep the tensor past the call (what it keeps, or a view
 *     it made, would point at the copy): checked after the call, which then raises;
 *   - its span is not much larger than its elements (a column of a wide matrix
 *     would cost a copy of the whole matrix's address range): refused instead.
 * After the call, success or failure, exactly the elements the callee changed are
 * written back: each element of the copy is compared with a pristine snapshot
 * taken at copy time, so an update the caller's side made meanwhile (a callback,
 * another thread) is not reverted. */

/* Bytes one element takes (at least 1: sub-byte types are compared bytewise). */
static inline size_t tvmfast_elem_bytes(const DLTensor* dl) noexcept {
  size_t bits = size_t(dl->dtype.bits) * dl->dtype.lanes;
  return bits < 8 ? 1 : (bits + 7) / 8;
}

static inline int64_t tvmfast_numel(const DLTensor* dl) noexcept {
  int64_t n = 1;
  for (int32_t i = 0; i < dl->ndim; ++i) n *= dl->shape[i];
  return n;
}

/* Whether the elements fill [data, data + bytes) in row-major order (size-1
 * dimensions may have any stride). */
static inline bool tvmfast_is_compact(const DLTensor* dl) noexcept {
  if (dl->strides == NULL) return true;
  int64_t expected = 1;
  for (int32_t i = dl->ndim - 1; i >= 0; --i) {
    if (dl->shape[i] != 1 && dl->strides[i] != expected) return false;
    expected *= dl->shape[i];
  }
  return true;
}

/* Bytes the tensor's elements occupy in a contiguous layout (sub-byte types packed). */
static inline size_t tvmfast_compact_bytes(const DLTensor* dl) noexcept {
  size_t bits = size_t(dl->dtype.bits) * dl->dtype.lanes * size_t(tvmfast_numel(dl));
  return (bits + 7) / 8;
}

/* [*lo, *hi): the bytes any element of a tensor touches, any stride sign (lo == hi
 * for an empty tensor). */
static inline void tvmfast_byte_range(const DLTensor* dl, uintptr_t* lo, uintptr_t* hi) noexcept {
  uintptr_t base = reinterpret_cast<uintptr_t>(dl->data) + dl->byte_offset;
  if (tvmfast_numel(dl) == 0) {
    *lo = *hi = base;
    return;
  }
  if (tvmfast_is_compact(dl)) {
    *lo = base;
    *hi = base + tvmfast_compact_bytes(dl);
    return;
  }
  int64_t elem = int64_t(tvmfast_elem_bytes(dl));
  int64_t low = 0, high = 0;
  for (int32_t i = 0; i < dl->ndim; ++i) {
    int64_t step = (dl->shape[i] - 1) * dl->strides[i] * elem;
    if (step < 0) low += step; else high += step;
  }
  *lo = base + low;
  *hi = base + high + elem;
}

/* Whether two tensors whose byte ranges overlap can still share no byte: every
 * element of both starts at its base plus a multiple of g (the gcd of their byte
 * strides), so if their bases differ by d (mod g) with both elements fitting in
 * between, they interleave without touching (the columns of one matrix, the
 * channels of one image).  A sufficient condition; false when unsure. */
static inline bool tvmfast_interleaved(const DLTensor* x, const DLTensor* y) noexcept {
  uint64_t g = 0;
  const DLTensor* both[2] = {x, y};
  for (const DLTensor* dl : both) {
    int64_t elem = int64_t(tvmfast_elem_bytes(dl)), expected = 1;
    if (size_t(dl->dtype.bits) * dl->dtype.lanes < 8) return false;
    for (int32_t i = dl->ndim - 1; i >= 0; --i) {
      int64_t stride = dl->strides != NULL ? dl->strides[i] : expected;
      expected *= dl->shape[i];
      if (dl->shape[i] <= 1) continue;
      uint64_t step = uint64_t(stride < 0 ? -stride : stride) * uint64_t(elem);
      while (step != 0) { uint64_t r = g % step; g = step; step = r; }
    }
  }
  if (g == 0) return false;
  uintptr_t bx = reinterpret_cast<uintptr_t>(x->data) + x->byte_offset;
  uintptr_t by = reinterpret_cast<uintptr_t>(y->data) + y->byte_offset;
  /* (by - bx) mod g, for either order of the two bases */
  uint64_t d = by >= bx ? uint64_t(by - bx) % g : (g - uint64_t(bx - by) % g) % g;
  return d >= tvmfast_elem_bytes(x) && d + tvmfast_elem_bytes(y) <= g;
}

/* Whether the aligned copy of a misaligned tensor is allowed: 0 yes; 1 a strided
 * tensor of a sub-byte type (its strides count packed elements) or of over 64
 * dimensions; 2 its span is far larger than its elements. */
static inline int tvmfast_copy_refusal(const DLTensor* dl) noexcept {
  if (tvmfast_is_compact(dl)) return 0;
  if (size_t(dl->dtype.bits) * dl->dtype.lanes < 8 || dl->ndim > 64) return 1;
  uintptr_t lo, hi;
  tvmfast_byte_range(dl, &lo, &hi);
  size_t span = hi - lo, elems = tvmfast_compact_bytes(dl);
  return (span > 4 * elems && span > (size_t(1) << 16)) ? 2 : 0;
}

/* Visit every element of a strided tensor: fn(byte offset from its data). */
template <typename Fn>
static inline void tvmfast_for_each_element(const DLTensor* dl, Fn fn) noexcept {
  /* Only dimensions that reach other bytes: a broadcast (stride 0) or size-1 dimension
   * revisits the same element, so an expanded tensor costs its distinct elements only. */
  int64_t shape[64], step[64], index[64] = {0};
  int32_t ndim = 0;
  int64_t elem = int64_t(tvmfast_elem_bytes(dl));
  if (dl->ndim > 64 || tvmfast_numel(dl) == 0) return;
  for (int32_t i = 0; i < dl->ndim; ++i) {
    if (dl->shape[i] > 1 && dl->strides[i] != 0) {
      shape[ndim] = dl->shape[i];
      step[ndim] = dl->strides[i] * elem;
      ++ndim;
    }
  }
  for (;;) {
    int64_t offset = 0;
    for (int32_t i = 0; i < ndim; ++i) offset += index[i] * step[i];
    fn(offset);
    int32_t d = ndim - 1;
    while (d >= 0 && ++index[d] == shape[d]) index[d--] = 0;
    if (d < 0) return;
  }
}

/* Copy t's elements into fresh memory where its data is aligned, laid out with t's own
 * strides: the copy the callee sees, then a pristine snapshot of it (the same
 * layout) to tell afterwards what the callee changed. */
static inline int tvmfast_tensor_copy_in(TvmfastTensor* t, size_t alignment) noexcept {
  uintptr_t lo, hi;
  tvmfast_byte_range(&t->dl, &lo, &hi);
  char* source = static_cast<char*>(t->dl.data) + t->dl.byte_offset;
  size_t lead = size_t(reinterpret_cast<uintptr_t>(source) - lo);  /* > 0 with negative strides */
  size_t shift = (alignment - lead % alignment) % alignment;       /* so that data lands aligned */
  size_t span = hi - lo;
  size_t half = (shift + span + alignment - 1) / alignment * alignment;
  char* scratch = static_cast<char*>(std::aligned_alloc(alignment, half == 0 ? alignment : 2 * half));
  if (scratch == NULL) return -1;
  char* data = scratch + shift + lead;
  char* pristine = data + half;
  if (span != 0) {
    if (tvmfast_is_compact(&t->dl)) {
      std::memcpy(data, source, span);
      std::memcpy(pristine, source, span);
    } else {
      size_t elem = tvmfast_elem_bytes(&t->dl);
      tvmfast_for_each_element(&t->dl, [&](int64_t off) {
        std::memcpy(data + off, source + off, elem);
        std::memcpy(pristine + off, source + off, elem);
      });
    }
  }
  t->scratch = scratch;
  t->pristine = pristine;
  t->source = source;
  t->scratch_bytes = span;
  t->dl.data = data;
  t->dl.byte_offset = 0;
  return 0;
}

/* Write back the elements the callee changed (copy differs from the snapshot). */
static inline void tvmfast_tensor_write_back(TvmfastTensor* t) noexcept {
  if (t->source == NULL || t->scratch_bytes == 0) return;
  const char* copy = static_cast<const char*>(t->dl.data);
  const char* pristine = static_cast<const char*>(t->pristine);
  char* source = static_cast<char*>(t->source);
  size_t elem = tvmfast_elem_bytes(&t->dl);
  if (!tvmfast_is_compact(&t->dl)) {
    tvmfast_for_each_element(&t->dl, [&](int64_t off) {
      if (std::memcmp(copy + off, pristine + off, elem) != 0) std::memcpy(source + off, copy + off, elem);
    });
    return;
  }
  size_t bytes = t->scratch_bytes;
  if (std::memcmp(copy, pristine, bytes) == 0) return;  /* read only: the common case */
  for (size_t i = 0; i + elem <= bytes; i += elem) {
    if (std::memcmp(copy + i, pristine + i, elem) != 0) std::memcpy(source + i, copy + i, elem);
  }
  for (size_t i = bytes - bytes % elem; i < bytes; ++i) {  /* a packed sub-byte tail */
    if (copy[i] != pristine[i]) source[i] = copy[i];
  }
}

/* How many references to t others hold (the callee kept it, returned it or made a view
 * of it): all of them but ours (one, plus one per extra argument slot passing t). */
static inline uint64_t tvmfast_tensor_foreign_refs(const TvmfastTensor* t) noexcept {
  return __atomic_load_n(&t->header.combined_ref_count, __ATOMIC_ACQUIRE) -
         (tvmfast_refcount_both_one + t->shared_slots);
}

/* The callee returned the copy itself and holds nothing else of it: make the result
 * describe the caller's memory again (as rt_mod's result would), once written back. */
static inline void tvmfast_tensor_point_back(TvmfastTensor* t) noexcept {
  t->dl.data = t->source;
  t->dl.byte_offset = 0;
  t->source = NULL;
}

/* Whether two tensors describe exactly the same elements (start, shape, strides, dtype). */
static inline bool tvmfast_same_elements(const DLTensor* x, const DLTensor* y) noexcept {
  if (static_cast<char*>(x->data) + x->byte_offset != static_cast<char*>(y->data) + y->byte_offset ||
      x->ndim != y->ndim || x->dtype.code != y->dtype.code || x->dtype.bits != y->dtype.bits ||
      x->dtype.lanes != y->dtype.lanes || x->device.device_type != y->device.device_type) {
    return false;
  }
  int64_t x_expected = 1, y_expected = 1;
  for (int32_t i = x->ndim - 1; i >= 0; --i) {
    if (x->shape[i] != y->shape[i]) return false;
    int64_t xs = x->strides != NULL ? x->strides[i] : x_expected;
    int64_t ys = y->strides != NULL ? y->strides[i] : y_expected;
    if (x->shape[i] > 1 && xs != ys) return false;  /* same start, other elements */
    x_expected *= x->shape[i];
    y_expected *= y->shape[i];
  }
  return true;
}

/* After the call: give our reference back.  Needs the GIL when t has an owner
 * (call_ptrs' raw tensors have none and release without it).  Alone → recycle
 * (release the owner now); kept by the callee → the last reference's deleter
 * releases the owner. */
static inline void tvmfast_tensor_release(TvmfastTensor* t) noexcept {
  if (t->header.combined_ref_count == tvmfast_refcount_both_one) {
    Py_XDECREF(t->owner);
    t->owner = NULL;
    tvmfast_tensor_drop_torch_handle(t);
    std::free(t->scratch);
    t->scratch = NULL;
    tvmfast_tensor_drop_keeper(t);
    TvmfastPool* pool = tvmfast_pool;
    if (pool != NULL && pool->size < TVMFAST_POOL_MAX) {
      pool->items[pool->size++] = t;
    } else {
      std::free(t->heap_dims);
      std::free(t);
    }
  } else {
    TVMFFIObjectDecRef(&t->header);
  }
}

#endif  // TVMFAST_HELPERS_H_
