/* TvmfastTensor: the ffi::Tensor tvmfast passes for every tensor argument, and its
 * per-thread pool.  Included by _core.pyx (declared in _c_api.pxd).
 *
 * A TvmfastTensor is a real TVM-FFI Tensor object (TVMFFIObject header followed by a
 * DLTensor, the layout of ffi::TensorObj), reference counted like any other, whose
 * deleter is ours.  It holds
 *   - a strong reference to the Python object whose memory it describes (`owner`), so
 *     the data stays allocated while the object lives, or the at::Tensor handle of a
 *     native torch op's argument (`torch_handle`),
 *   - its own copy of shape and strides (never pointers into the producer),
 *   - for a misaligned CPU tensor, an aligned copy of the data that it owns (`scratch`;
 *     memory/aligned_copy.h).
 * After the call, a tensor nobody else references goes back to a per-thread pool (no
 * allocation per call).  A callee that kept a reference (an ffi.Array, a Relax VM
 * result, a Python callback) keeps a valid object: tvmfast drops its own reference and
 * the deleter releases what the object holds when the last one goes.  Both paths give
 * it back through one teardown, tvmfast_tensor_teardown. */
#ifndef TVMFAST_MEMORY_TENSOR_H_
#define TVMFAST_MEMORY_TENSOR_H_

#include <Python.h>
#include <dlpack/dlpack.h>
#include <tvm/ffi/c_api.h>

#include <cstdint>
#include <cstdlib>

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

/* Set by an atexit handler: from then on a deleter running late (a tensor kept in
 * some global TVM registry) leaks its owner instead of taking a dying GIL. */
static int tvmfast_python_exiting = 0;
static inline void tvmfast_set_python_exiting() { tvmfast_python_exiting = 1; }

/* The per-thread pool: a stack of free objects in one heap block, reached through a
 * plain __thread pointer (initial-exec TLS: one instruction away, no __tls_get_addr per
 * call; the block is on the heap because static TLS space is scarce).  A stack rather
 * than a linked list: taking k objects reads one or two cache lines, not a chain of k
 * dependent loads (which, with caches cold after a GPU launch, is k cache misses in a
 * row).  Freed at thread exit (TvmfastThreadGuard, below). */
#define TVMFAST_TLS __thread __attribute__((tls_model("initial-exec")))
typedef struct TvmfastPool {
  int size;
  TvmfastTensor* items[TVMFAST_POOL_MAX];
} TvmfastPool;
static TVMFAST_TLS TvmfastPool* tvmfast_pool = NULL;

/* Releases of native torch op argument handles put off to the end of the op's call from
 * Python, in the same thread.  Why: torch's Python binding releases the GIL around the
 * dispatcher, and releasing the last extra reference to a tensor that has a Python object
 * makes torch take the GIL to drop its reference to that object (TensorImpl's
 * decref_pyobject): one GIL hand-off per tensor argument.  An op called from Python
 * (torch/op_entries.h, tvmfast_op_overload_call) marks this thread while the dispatcher
 * runs; handles released in the thread meanwhile (normally its kernel's arguments, which
 * the caller's Python objects keep alive anyway) are kept here and released once the call
 * is back under the GIL, where that costs no hand-off: the only effect is a reference
 * torch holds a little longer.  Elsewhere (a compiled graph, AOTInductor, another thread,
 * a tensor the callee kept and dropped later) a handle is released at once, as before; so
 * is one past the capacity here.  The list is reached as the pool is (one initial-exec
 * TLS load), made by a thread's first op call from Python and freed at its exit. */
#define TVMFAST_DEFERRED_HANDLES 64
typedef struct TvmfastDeferredHandles {
  int32_t open_calls;  /* op calls from Python under way in this thread */
  int32_t n;           /* handles[0:n]: each open call owns those from its start */
  void* handles[TVMFAST_DEFERRED_HANDLES];
} TvmfastDeferredHandles;
static TVMFAST_TLS TvmfastDeferredHandles* tvmfast_deferred = NULL;

/* What a thread made of the above (its pool, its list), freed at its exit by one
 * thread_local guard, armed by whichever is made first. */
struct TvmfastThreadGuard {
  bool armed = false;
  ~TvmfastThreadGuard() {
    TvmfastPool* pool = tvmfast_pool;
    tvmfast_pool = NULL;
    if (pool != NULL) {
      for (int i = 0; i < pool->size; ++i) {
        std::free(pool->items[i]->heap_dims);
        std::free(pool->items[i]);
      }
      std::free(pool);
    }
    std::free(tvmfast_deferred);  /* empty: every open call released its handles */
    tvmfast_deferred = NULL;
  }
};
static thread_local TvmfastThreadGuard tvmfast_thread_guard;

/* This thread's list, made on first use (NULL if out of memory: nothing is put off). */
static inline TvmfastDeferredHandles* tvmfast_deferred_handles() noexcept {
  TvmfastDeferredHandles* d = tvmfast_deferred;
  if (d == NULL) {
    d = static_cast<TvmfastDeferredHandles*>(std::calloc(1, sizeof(TvmfastDeferredHandles)));
    if (d == NULL) return NULL;
    tvmfast_thread_guard.armed = true;  /* frees the list at the thread's exit */
    tvmfast_deferred = d;
  }
  return d;
}

/* Release a native torch op argument's handle (an at::Tensor* we own): at once, or at the
 * end of this thread's open op call from Python (see above). */
static inline void tvmfast_release_torch_handle(void* handle) noexcept {
  TvmfastDeferredHandles* d = tvmfast_deferred;
  if (d != NULL && d->open_calls > 0 && d->n < TVMFAST_DEFERRED_HANDLES) {
    d->handles[d->n++] = handle;
    return;
  }
  tvmfast_delete_aten_tensor(handle);
}

/* The end of an op call from Python that started when d->n was `start`: release the
 * handles put off since, with the GIL held.  One at a time, the count lowered first: a
 * release may run Python code (a tensor's last reference), which may make op calls of its
 * own. */
static inline void tvmfast_release_deferred_handles(TvmfastDeferredHandles* d, int32_t start) noexcept {
  while (d->n > start) {
    void* handle = d->handles[--d->n];
    tvmfast_delete_aten_tensor(handle);
  }
}

static inline void tvmfast_tensor_drop_torch_handle(TvmfastTensor* t) noexcept {
  if (t->torch_handle != NULL) {
    void* handle = t->torch_handle;
    t->torch_handle = NULL;
    tvmfast_release_torch_handle(handle);
  }
}

/* Give back the producer's reference to memory a misaligned copy was taken from. */
static inline void tvmfast_tensor_drop_keeper(TvmfastTensor* t) noexcept {
  if (t->source_keeper != NULL) {
    if (t->source_keeper->deleter != NULL) t->source_keeper->deleter(t->source_keeper);
    t->source_keeper = NULL;
  }
}

/* Everything a tensor object holds beyond itself, given back once no call or callee uses
 * it: the owner (under the GIL: the caller's, or taken here when take_gil; skipped once
 * Python is exiting), the torch handle, the aligned copy and the producer's keeper. */
static inline void tvmfast_tensor_teardown(TvmfastTensor* t, bool take_gil) noexcept {
  if (t->owner != NULL) {
    if (!take_gil) {
      Py_DECREF(t->owner);
    } else if (!tvmfast_python_exiting && Py_IsInitialized()) {
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

static void tvmfast_tensor_deleter(void* self, int flags) {
  TvmfastTensor* t = static_cast<TvmfastTensor*>(self);
  if (flags & kTVMFFIObjectDeleterFlagBitMaskStrong) tvmfast_tensor_teardown(t, true);
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
        tvmfast_thread_guard.armed = true;
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

/* t's own storage for ndim shape entries then ndim strides: inline up to TVMFAST_INLINE_NDIM,
 * else on the heap (replacing an earlier one).  NULL: out of memory. */
static inline int64_t* tvmfast_tensor_dims_storage(TvmfastTensor* t, int32_t ndim) noexcept {
  if (ndim <= TVMFAST_INLINE_NDIM) return t->dims;
  std::free(t->heap_dims);
  t->heap_dims = static_cast<int64_t*>(std::malloc(2 * sizeof(int64_t) * ndim));
  return t->heap_dims;
}

/* Replace t->dl's shape/strides pointers (the producer's) by t's own copies. */
static inline int tvmfast_tensor_own_dims(TvmfastTensor* t) noexcept {
  int32_t ndim = t->dl.ndim;
  int64_t* dims = tvmfast_tensor_dims_storage(t, ndim);
  if (dims == NULL) return -1;
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

/* After the call: give our reference back.  Needs the GIL when t has an owner
 * (call_ptrs' raw tensors and native torch ops' have none and release without it).
 * Alone: torn down and recycled; kept by the callee: the last reference's deleter tears
 * it down. */
static inline void tvmfast_tensor_release(TvmfastTensor* t) noexcept {
  if (t->header.combined_ref_count == tvmfast_refcount_both_one) {
    tvmfast_tensor_teardown(t, false);
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

#endif  // TVMFAST_MEMORY_TENSOR_H_
