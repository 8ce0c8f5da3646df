/* The native torch op: a C kernel per op, registered through torch's stable C ABI
 * (torch/csrc/inductor/aoti_torch/c/shim.h), so that an op call made by torch's
 * dispatcher (eager, a compiled graph, an AOTInductor package) reaches the TVM function
 * without entering Python.  Included by _core.pyx (declared in _c_api.pxd); the kernel's
 * body is torch/native_op.pxi.
 *
 * torch's boxed kernel type, void(StableIValue* stack, uint64_t num_args, uint64_t
 * num_outputs), carries no user data: an op finds its function through its entry point.
 * tvmfast_op_entries[k] is a distinct function per slot k (a template instance) that
 * calls the body with k; native_op.pxi keeps what slot k calls.
 *
 * Errors: a boxed kernel reports one by throwing a C++ exception through torch's
 * dispatcher.  The body hands back the Python exception of a failed call, and the entry
 * throws it as a `python_error`, the type torch's own Python-calling kernels throw and
 * torch's Python bindings catch by name to restore the Python exception as it was (type,
 * value and traceback).  Its layout must be torch's (torch/csrc/Exceptions.h): a virtual
 * what(), then type, value, traceback and the message.  native_op.pxi's self-test checks
 * at first use that an exception thrown this way reaches Python unchanged; until it has,
 * no op is registered with a C kernel.
 */
#ifndef TVMFAST_TORCH_OP_ENTRIES_H_
#define TVMFAST_TORCH_OP_ENTRIES_H_

#include <Python.h>

#include <array>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "../memory/tensor.h"  /* tvmfast_delete_aten_tensor, set here */

typedef void (*tvmfast_boxed_kernel)(uint64_t* stack, uint64_t num_args, uint64_t num_outputs);

/* torch's functions, found at run time in the loaded libtorch (tvmfast._torch): the
 * stable C ABI's, and the exported C++ function that bumps a tensor's version counter. */
typedef struct TvmfastTorchOpApi {
  int32_t (*library_init_impl)(const char* ns, const char* dispatch_key, const char* file,
                               uint32_t line, void** ret_library);
  int32_t (*library_impl)(void* library, const char* name, tvmfast_boxed_kernel fn);
  int32_t (*delete_library)(void* library);
  void (*bump_version)(const void* tensor);  /* torch::autograd::impl::bump_version(const at::Tensor&) */
  bool (*requires_grad)(const void* impl);  /* c10::TensorImpl::requires_grad() const */
  /* torch::autograd::ForwardADLevel::try_get_by_idx(size_t): a std::shared_ptr<ForwardADLevel>,
   * of the same layout as any std::shared_ptr (two pointers, a destructor through the control block). */
  std::shared_ptr<void> (*try_get_forward_level)(size_t index);
  bool (*inference_mode_enabled)();  /* c10::InferenceMode::is_enabled() */
  /* The stable C ABI's allocation, for the outputs of a functional op (torch's allocator: on
   * CUDA, its caching allocator on the current stream). */
  int32_t (*empty_strided)(int64_t ndim, const int64_t* sizes, const int64_t* strides, int32_t dtype,
                           int32_t device_type, int32_t device_index, void** ret);
  int32_t (*new_tensor_handle)(void* orig, void** ret);
  int32_t (*get_dtype)(void* tensor, int32_t* ret);
  int32_t device_type_cpu;  /* aoti_torch_device_type_cpu(), _cuda() */
  int32_t device_type_cuda;
} TvmfastTorchOpApi;
static TvmfastTorchOpApi tvmfast_torch_op_api;

static inline void tvmfast_set_torch_alloc_api(uintptr_t empty_strided, uintptr_t new_tensor_handle,
                                               uintptr_t get_dtype, int32_t device_type_cpu,
                                               int32_t device_type_cuda) noexcept {
  TvmfastTorchOpApi& api = tvmfast_torch_op_api;
  api.empty_strided = reinterpret_cast<decltype(api.empty_strided)>(empty_strided);
  api.new_tensor_handle = reinterpret_cast<decltype(api.new_tensor_handle)>(new_tensor_handle);
  api.get_dtype = reinterpret_cast<decltype(api.get_dtype)>(get_dtype);
  api.device_type_cpu = device_type_cpu;
  api.device_type_cuda = device_type_cuda;
}

static inline void tvmfast_set_torch_op_api(uintptr_t library_init_impl, uintptr_t library_impl,
                                            uintptr_t delete_library, uintptr_t bump_version,
                                            uintptr_t delete_tensor, uintptr_t requires_grad,
                                            uintptr_t try_get_forward_level,
                                            uintptr_t inference_mode_enabled) noexcept {
  TvmfastTorchOpApi& api = tvmfast_torch_op_api;
  api.library_init_impl = reinterpret_cast<decltype(api.library_init_impl)>(library_init_impl);
  api.library_impl = reinterpret_cast<decltype(api.library_impl)>(library_impl);
  api.delete_library = reinterpret_cast<decltype(api.delete_library)>(delete_library);
  api.bump_version = reinterpret_cast<decltype(api.bump_version)>(bump_version);
  tvmfast_delete_aten_tensor = reinterpret_cast<int32_t (*)(void*)>(delete_tensor);
  api.requires_grad = reinterpret_cast<decltype(api.requires_grad)>(requires_grad);
  api.try_get_forward_level = reinterpret_cast<decltype(api.try_get_forward_level)>(try_get_forward_level);
  api.inference_mode_enabled = reinterpret_cast<decltype(api.inference_mode_enabled)>(inference_mode_enabled);
}

/* Whether torch's inference mode is on in this thread (a thread-local read; never throws). */
static inline int tvmfast_inference_mode_enabled() noexcept {
  try {
    return tvmfast_torch_op_api.inference_mode_enabled();
  } catch (...) {
    return 0;
  }
}

/* A tensor with autograd metadata (a view, a parameter, a dual tensor) that still takes the C
 * path: it does not require grad, and no forward-mode AD level is open (levels are numbered
 * from 0: none open means level 0 is not there). */
static inline int tvmfast_autograd_inert(const void* impl) noexcept {
  try {
    if (tvmfast_torch_op_api.requires_grad(impl)) return 0;
    return tvmfast_torch_op_api.try_get_forward_level(0) == nullptr;
  } catch (...) {
    return 0;
  }
}

/* torch's version-counter bump for a tensor the op writes.  It throws for an inference
 * tensor written outside inference mode, which the caller has ruled out before bumping
 * any (-1 should it throw all the same). */
static inline int tvmfast_bump_version(void* tensor_handle) noexcept {
  try {
    tvmfast_torch_op_api.bump_version(tensor_handle);
    return 0;
  } catch (...) {
    return -1;
  }
}

/* torch's python_error, by name and layout (see above). */
struct python_error : public std::exception {
  python_error() = default;
  python_error(const python_error& other)
      : type(other.type), value(other.value), traceback(other.traceback), message(other.message) {
    PyGILState_STATE gil = PyGILState_Ensure();
    Py_XINCREF(type);
    Py_XINCREF(value);
    Py_XINCREF(traceback);
    PyGILState_Release(gil);
  }
  python_error(python_error&& other) noexcept
      : type(other.type), value(other.value), traceback(other.traceback),
        message(std::move(other.message)) {
    other.type = other.value = other.traceback = nullptr;
  }
  python_error& operator=(const python_error&) = delete;
  python_error& operator=(python_error&&) = delete;
  ~python_error() override {
    if ((type || value || traceback) && Py_IsInitialized()) {
      PyGILState_STATE gil = PyGILState_Ensure();
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(traceback);
      PyGILState_Release(gil);
    }
  }
  const char* what() const noexcept override { return message.c_str(); }

  PyObject* type{nullptr};
  PyObject* value{nullptr};
  PyObject* traceback{nullptr};
  std::string message;
};

/* The body of every op kernel (native_op.pxi): 0 done (outputs on the stack), -1 failed
 * with *exc a new reference to the Python exception to raise. */
typedef int (*tvmfast_op_body_fn)(int slot, uint64_t* stack, uint64_t num_args, uint64_t num_outputs,
                                  PyObject** exc);
static tvmfast_op_body_fn tvmfast_op_body = NULL;

/* Throw exc (a reference we own) as a python_error.  Not inlined into the entries. */
[[noreturn]] static __attribute__((noinline)) void tvmfast_op_throw(PyObject* exc) {
  python_error error;
  PyGILState_STATE gil = PyGILState_Ensure();
  error.type = reinterpret_cast<PyObject*>(Py_TYPE(exc));
  Py_INCREF(error.type);
  error.value = exc;  /* our reference moves to the error */
  error.traceback = PyException_GetTraceback(exc);  /* new reference or NULL */
  /* what(): for callers that report the message without Python (AOTInductor's runtime). */
  PyObject* text = PyObject_Str(exc);
  const char* chars = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
  error.message = std::string(Py_TYPE(exc)->tp_name) + ": " + (chars != NULL ? chars : "");
  Py_XDECREF(text);
  PyErr_Clear();
  PyGILState_Release(gil);
  throw std::move(error);
}

template <int K>
static void tvmfast_op_entry(uint64_t* stack, uint64_t num_args, uint64_t num_outputs) {
  PyObject* exc = NULL;
  if (tvmfast_op_body(K, stack, num_args, num_outputs, &exc) != 0) tvmfast_op_throw(exc);
}

#define TVMFAST_MAX_OPS 512
template <int... K>
static constexpr std::array<tvmfast_boxed_kernel, sizeof...(K)> tvmfast_make_op_entries(
    std::integer_sequence<int, K...>) {
  return {{&tvmfast_op_entry<K>...}};
}
static const std::array<tvmfast_boxed_kernel, TVMFAST_MAX_OPS> tvmfast_op_entries =
    tvmfast_make_op_entries(std::make_integer_sequence<int, TVMFAST_MAX_OPS>{});

static inline tvmfast_boxed_kernel tvmfast_op_entry_at(int slot) noexcept { return tvmfast_op_entries[slot]; }
static inline void tvmfast_set_op_body(tvmfast_op_body_fn body) noexcept { tvmfast_op_body = body; }

/* Atomics for the slots and their targets (native_op.pxi says what each counts). */
static inline int tvmfast_atomic_add(int* counter, int delta) noexcept {
  return __atomic_add_fetch(counter, delta, __ATOMIC_SEQ_CST);
}
static inline int tvmfast_atomic_load(int* counter) noexcept { return __atomic_load_n(counter, __ATOMIC_SEQ_CST); }
static inline void tvmfast_atomic_store(int* counter, int value) noexcept {
  __atomic_store_n(counter, value, __ATOMIC_SEQ_CST);
}
static inline void* tvmfast_load_ptr(void** p) noexcept { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void tvmfast_store_ptr(void** p, void* v) noexcept { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/* The call of a tvmfast op's OpOverload (a subclass tvmfast gives it, torch_op.py): what
 * OpOverload.__call__ does, self._op(*args, **kwargs), without that Python frame.  Set only
 * where OpOverload.__call__'s code is exactly that (torch_op.py compares it). */
static PyObject* tvmfast_op_overload_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  static PyObject* op_name = NULL;
  if (op_name == NULL && (op_name = PyUnicode_InternFromString("_op")) == NULL) return NULL;
  PyObject* op = PyObject_GetAttr(self, op_name);
  if (op == NULL) return NULL;
  /* The kernel's argument handles are released back here, under the GIL (memory/tensor.h);
   * without the thread's list (out of memory) they are released at once, as elsewhere. */
  TvmfastDeferredHandles* deferred = tvmfast_deferred_handles();
  int32_t start = 0;
  if (deferred != NULL) {
    start = deferred->n;
    deferred->open_calls++;
  }
  PyObject* result = PyObject_Call(op, args, kwargs);
  Py_DECREF(op);
  if (deferred != NULL) {
    deferred->open_calls--;
    if (deferred->n > start) {
      /* A release may run Python code (a tensor's last reference): not with an error set. */
      PyObject *type = NULL, *value = NULL, *traceback = NULL;
      if (result == NULL) PyErr_Fetch(&type, &value, &traceback);
      tvmfast_release_deferred_handles(deferred, start);
      if (result == NULL) PyErr_Restore(type, value, traceback);
    }
  }
  return result;
}

static inline void tvmfast_set_op_overload_call(PyTypeObject* tp) {
  tp->tp_call = tvmfast_op_overload_call;
  PyType_Modified(tp);
}

#endif  // TVMFAST_TORCH_OP_ENTRIES_H_
