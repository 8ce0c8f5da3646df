/* numpy arrays read where numpy keeps their metadata, without a call into numpy.
 * Included by _core.pyx (declared in _c_api.pxd).
 *
 * PyArrayObject's first fields and PyArray_Descr's first fields are numpy's public C ABI
 * (ndarraytypes.h: PyArrayObject_fields, the head of PyArray_Descr), the same in numpy
 * 1.x and 2.x; extensions compiled against one run on the other through exactly these
 * fields (PyArray_DATA, PyArray_NDIM, PyArray_DIMS, PyArray_STRIDES, PyArray_DESCR,
 * PyArray_FLAGS).  tvmfast reads them without numpy's headers (numpy is no build
 * dependency), and uses the reading only after spine/arrays.pxi has compared it with
 * numpy's own DLPack export of sample arrays of every dtype below.
 *
 * What DLPack would export differently, or refuse, is not read here: the caller then
 * asks numpy's __dlpack__ (its result or its error, as for rt_mod). */
#ifndef TVMFAST_MEMORY_NUMPY_ARRAY_H_
#define TVMFAST_MEMORY_NUMPY_ARRAY_H_

#include <Python.h>
#include <dlpack/dlpack.h>

#include <cstdint>

#include "memory/tensor.h"

typedef struct TvmfastNumpyDescrHead {
  PyObject_HEAD
  PyTypeObject* typeobj;
  char kind;
  char type;
  char byteorder;
  char former_flags;
  int type_num;
} TvmfastNumpyDescrHead;

typedef struct TvmfastNumpyArrayHead {
  PyObject_HEAD
  char* data;
  int nd;
  intptr_t* dimensions;
  intptr_t* strides;
  PyObject* base;
  TvmfastNumpyDescrHead* descr;
  int flags;
} TvmfastNumpyArrayHead;

#define TVMFAST_NPY_WRITEABLE 0x0400 /* NPY_ARRAY_WRITEABLE */
#define TVMFAST_NPY_TYPES 24         /* NPY_BOOL (0) .. NPY_HALF (23) */

/* numpy type number -> DLPack dtype, as numpy's __dlpack__ exports it; bits == 0: not
 * read here (long double, objects, strings, datetimes, user types...). */
static DLDataType tvmfast_numpy_dtypes[TVMFAST_NPY_TYPES];

static inline void tvmfast_numpy_dtypes_init() {
  for (int i = 0; i < TVMFAST_NPY_TYPES; ++i) tvmfast_numpy_dtypes[i] = DLDataType{0, 0, 0};
  auto set = [](int num, uint8_t code, size_t bytes) {
    tvmfast_numpy_dtypes[num] = DLDataType{code, static_cast<uint8_t>(8 * bytes), 1};
  };
  set(0, kDLBool, 1);                      /* NPY_BOOL */
  set(1, kDLInt, 1);                       /* NPY_BYTE */
  set(2, kDLUInt, 1);                      /* NPY_UBYTE */
  set(3, kDLInt, sizeof(short));           /* NPY_SHORT */
  set(4, kDLUInt, sizeof(short));          /* NPY_USHORT */
  set(5, kDLInt, sizeof(int));             /* NPY_INT */
  set(6, kDLUInt, sizeof(int));            /* NPY_UINT */
  set(7, kDLInt, sizeof(long));            /* NPY_LONG */
  set(8, kDLUInt, sizeof(long));           /* NPY_ULONG */
  set(9, kDLInt, sizeof(long long));       /* NPY_LONGLONG */
  set(10, kDLUInt, sizeof(long long));     /* NPY_ULONGLONG */
  set(11, kDLFloat, 4);                    /* NPY_FLOAT */
  set(12, kDLFloat, 8);                    /* NPY_DOUBLE */
  set(14, kDLComplex, 8);                  /* NPY_CFLOAT */
  set(15, kDLComplex, 16);                 /* NPY_CDOUBLE */
  set(23, kDLFloat, 2);                    /* NPY_HALF */
}

/* Fill t->dl (data, CPU device, dtype, shape and strides in t's own storage) from the
 * array obj.  0: done.  1: not read here (read-only, byte-swapped, a dtype above does not
 * cover, strides not a multiple of the item size): the caller asks numpy's __dlpack__.
 * -1: out of memory.  The caller holds obj (and takes the reference t keeps). */
static inline int tvmfast_numpy_describe(PyObject* obj, TvmfastTensor* t) noexcept {
  const TvmfastNumpyArrayHead* a = reinterpret_cast<const TvmfastNumpyArrayHead*>(obj);
  const TvmfastNumpyDescrHead* d = a->descr;
  if (!(a->flags & TVMFAST_NPY_WRITEABLE)) return 1; /* numpy's legacy export refuses it */
  if (d->type_num < 0 || d->type_num >= TVMFAST_NPY_TYPES) return 1;
  DLDataType dtype = tvmfast_numpy_dtypes[d->type_num];
  if (dtype.bits == 0) return 1;
  /* Native byte order: '=' or '|', or this machine's explicit one. */
  const char native = (PY_LITTLE_ENDIAN ? '<' : '>');
  if (d->byteorder != '=' && d->byteorder != '|' && d->byteorder != native) return 1;
  const int32_t ndim = a->nd;
  const int64_t itemsize = dtype.bits / 8;
  int64_t* dims = tvmfast_tensor_dims_storage(t, ndim);
  if (dims == NULL) return -1;
  /* Strides as numpy's own __dlpack__ exports them, empty arrays included (numpy's may be
   * anything there, and TVM's layout check sees them as rt_mod passes them). */
  for (int32_t i = 0; i < ndim; ++i) {
    const int64_t stride = a->strides[i];
    if (stride % itemsize != 0) return 1;
    dims[i] = a->dimensions[i];
    dims[ndim + i] = stride / itemsize;
  }
  t->dl.data = a->data;
  t->dl.device.device_type = kDLCPU;
  t->dl.device.device_id = 0;
  t->dl.ndim = ndim;
  t->dl.dtype = dtype;
  t->dl.shape = dims;
  t->dl.strides = dims + ndim;
  t->dl.byte_offset = 0;
  return 0;
}

#endif  // TVMFAST_MEMORY_NUMPY_ARRAY_H_
