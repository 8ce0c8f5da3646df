/* Python ints beyond int64, converted in C as tvm_ffi converts them (its
 * TVMFFIPyLongToBigInt and TVMFFIPyLongFromBytes, tvm_ffi_python_helpers.h): an ffi.BigInt
 * whose content is whole signed 64-bit words, least-significant first, native byte order.
 * Included by _core.pyx (declared in _c_api.pxd).
 *
 * The two C functions are libtvm_ffi's since apache-tvm-ffi 0.1.15; an older library lacks
 * them (and refuses such ints itself), so they are looked up at import, in the libtvm_ffi
 * this module is linked against, and a NULL leaves these ints to tvm_ffi. */
#ifndef TVMFAST_SPINE_BIG_INT_H_
#define TVMFAST_SPINE_BIG_INT_H_

#include <Python.h>
#include <dlfcn.h>
#include <tvm/ffi/c_api.h>

#include <cstdint>
#include <cstring>

/* TVMFFITypeIndex's kTVMFFIBigInt (not in older headers). */
#define TVMFAST_FFI_BIGINT 78

typedef int (*TvmfastBigIntFromByteArray)(const TVMFFIByteArray* input, TVMFFIAny* out);
typedef TVMFFIByteArray (*TvmfastBigIntGetContent)(const TVMFFIAny* value);

static TvmfastBigIntFromByteArray tvmfast_bigint_from_bytes __attribute__((unused)) = NULL;
static TvmfastBigIntGetContent tvmfast_bigint_content __attribute__((unused)) = NULL;

/* Look both functions up in the library that defines TVMFFIObjectDecRef.  1: found. */
static inline int tvmfast_bigint_api_init(void) {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&TVMFFIObjectDecRef), &info) == 0 || info.dli_fname == NULL) {
    return 0;
  }
  void* lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (lib == NULL) return 0;
  void* from_bytes = dlsym(lib, "TVMFFIBigIntFromByteArray");
  void* content = dlsym(lib, "TVMFFIBigIntGetContentByteArray");
  dlclose(lib); /* RTLD_NOLOAD took a reference on a library this module keeps loaded */
  if (from_bytes == NULL || content == NULL) return 0;
  tvmfast_bigint_from_bytes = reinterpret_cast<TvmfastBigIntFromByteArray>(from_bytes);
  tvmfast_bigint_content = reinterpret_cast<TvmfastBigIntGetContent>(content);
  return 1;
}

#if PY_BIG_ENDIAN
/* Keep the least-significant word first; only the byte order within each word changes. */
static inline void tvmfast_bigint_swap_words(char* data, size_t size) {
  for (size_t i = 0; i < size; i += 8) {
    for (size_t j = 0; j < 4; ++j) {
      char c = data[i + j];
      data[i + j] = data[i + 7 - j];
      data[i + 7 - j] = c;
    }
  }
}
#endif

/* value (a Python int) as an owned ffi.BigInt in *out.  0: done; -1: a Python error is set;
 * otherwise TVM-FFI's error code (its error raised in its slot).  Words are written into a
 * stack buffer for ints up to 1024 bits, else into a temporary bytes object. */
static inline int tvmfast_bigint_from_pylong(PyObject* value, TVMFFIAny* out) {
  char small[128];
  PyObject* bytes = NULL;
  char* data = small;
#if PY_VERSION_HEX >= 0x030D0000
  Py_ssize_t size = PyLong_AsNativeBytes(value, NULL, 0, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
  if (size < 0) return -1;
  if (size > PY_SSIZE_T_MAX - 7) {
    PyErr_NoMemory();
    return -1;
  }
  size = (size + 7) / 8 * 8;
#else
  size_t bits = _PyLong_NumBits(value);
  if (bits == (size_t)-1 && PyErr_Occurred()) return -1;
  size_t size_unsigned = bits / 8 + 1; /* room for the sign bit, positive values too */
  if (size_unsigned > (size_t)(PY_SSIZE_T_MAX - 7)) {
    PyErr_NoMemory();
    return -1;
  }
  Py_ssize_t size = ((Py_ssize_t)size_unsigned + 7) / 8 * 8;
#endif
  if (size > (Py_ssize_t)sizeof(small)) {
    bytes = PyBytes_FromStringAndSize(NULL, size);
    if (bytes == NULL) return -1;
    data = PyBytes_AS_STRING(bytes);
  }
#if PY_VERSION_HEX >= 0x030D0000
  Py_ssize_t written = PyLong_AsNativeBytes(value, data, size, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
  if (written > size) PyErr_SetString(PyExc_OverflowError, "Python integer byte conversion truncated");
  if (written < 0 || written > size) {
    Py_XDECREF(bytes);
    return -1;
  }
#else
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(value), reinterpret_cast<unsigned char*>(data),
                          (size_t)size, 1, 1) < 0) {
    Py_XDECREF(bytes);
    return -1;
  }
#endif
#if PY_BIG_ENDIAN
  tvmfast_bigint_swap_words(data, (size_t)size);
#endif
  TVMFFIByteArray words{data, (size_t)size};
  int ret = tvmfast_bigint_from_bytes(&words, out);
  Py_XDECREF(bytes);
  return ret;
}

/* The Python int of a BigInt (borrowed: the caller keeps its reference). NULL: error set. */
static inline PyObject* tvmfast_bigint_to_pylong(const TVMFFIAny* value) {
  TVMFFIByteArray words = tvmfast_bigint_content(value);
#if PY_BIG_ENDIAN
  PyObject* bytes = PyBytes_FromStringAndSize(words.data, (Py_ssize_t)words.size);
  if (bytes == NULL) return NULL;
  tvmfast_bigint_swap_words(PyBytes_AS_STRING(bytes), words.size);
  const char* data = PyBytes_AS_STRING(bytes);
#else
  const char* data = words.data;
#endif
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* result = PyLong_FromNativeBytes(data, words.size, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
  PyObject* result = _PyLong_FromByteArray(reinterpret_cast<const unsigned char*>(data), words.size, 1, 1);
#endif
#if PY_BIG_ENDIAN
  Py_DECREF(bytes);
#endif
  return result;
}

#endif  // TVMFAST_SPINE_BIG_INT_H_
