/* The frame between tvmfast and TVM-FFI, and the CPython glue of the front doors.
 * Included by _core.pyx (declared in _c_api.pxd). */
#ifndef TVMFAST_SPINE_FRAME_H_
#define TVMFAST_SPINE_FRAME_H_

#include <Python.h>
#include <tvm/ffi/c_api.h>

#include <cstdint>

/* Result of the last call, parked here for tvm_ffi to convert (one per thread). */
static thread_local TVMFFIAny tvmfast_result_stash __attribute__((unused));

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

/* The front doors' vectorcall entries.  A door (bound_vectorcall, frozen_vectorcall) returns
 * a callee's error as a CallFailure object instead of raising it (spine/errors.pxi); the
 * entry raises it here, in C, so that no Cython traceback frame is added on its way out:
 * the exception reaches the caller with the traceback tvm_ffi gave it. */
typedef PyObject* (*tvmfast_door_call)(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames);
typedef PyObject* (*tvmfast_failure_raiser)(PyObject* failure);
static tvmfast_door_call tvmfast_bound_door = NULL;
static tvmfast_door_call tvmfast_frozen_door = NULL;
static PyTypeObject* tvmfast_failure_type = NULL;
static tvmfast_failure_raiser tvmfast_raise_failure = NULL;

static inline void tvmfast_set_door_entries(tvmfast_door_call bound, tvmfast_door_call frozen,
                                            PyTypeObject* failure_type, tvmfast_failure_raiser raiser) {
  tvmfast_bound_door = bound;
  tvmfast_frozen_door = frozen;
  tvmfast_failure_type = failure_type;
  tvmfast_raise_failure = raiser;
}

static inline PyObject* tvmfast_door_outcome(PyObject* result) {
  if (result != NULL && Py_TYPE(result) == tvmfast_failure_type) {
    tvmfast_raise_failure(result);
    Py_DECREF(result);
    return NULL;
  }
  return result;
}

static PyObject* tvmfast_bound_entry(PyObject* callable, PyObject* const* args, size_t nargsf,
                                     PyObject* kwnames) {
  return tvmfast_door_outcome(tvmfast_bound_door(callable, (void**)args, nargsf, kwnames));
}

static PyObject* tvmfast_frozen_entry(PyObject* callable, PyObject* const* args, size_t nargsf,
                                      PyObject* kwnames) {
  return tvmfast_door_outcome(tvmfast_frozen_door(callable, (void**)args, nargsf, kwnames));
}

/* cls.__new__(cls) as the type's own tp_new (what Cython emits for a known type): no attribute
 * lookup and Python-level call per result. */
static inline PyObject* tvmfast_new_instance(PyObject* cls) {
  static PyObject* no_args = NULL;
  if (no_args == NULL && (no_args = PyTuple_New(0)) == NULL) return NULL;
  PyTypeObject* type = reinterpret_cast<PyTypeObject*>(cls);
  return type->tp_new(type, no_args, NULL);
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

/* callable(*args) through its type's tp_call, args a tuple the caller keeps (no tuple made
 * per call, no vectorcall probe): for a callable tvmfast checked has one. */
static inline PyObject* tvmfast_tp_call(PyObject* callable, PyObject* args) {
  return Py_TYPE(callable)->tp_call(callable, args, NULL);
}

#endif  // TVMFAST_SPINE_FRAME_H_
