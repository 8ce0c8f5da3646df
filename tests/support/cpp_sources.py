"""C++ test functions (compiled with tvm_ffi.cpp.load_inline) that several test files use."""

# y = x + 1 on 1-D float32 tensors of any strides and any data alignment (the callee that takes
# anything: the reference for misaligned, strided and aliased views).  Needs `namespace ffi =
# tvm::ffi;` and <tvm/ffi/container/tensor.h>, <tvm/ffi/error.h> before it.
ADD_ONE = r"""
// y = x + 1 on 1-D float32 tensors of any strides and any data alignment.
void add_one(ffi::TensorView x, ffi::TensorView y) {
  TVM_FFI_ICHECK(x.ndim() == 1) << "x must be a 1D tensor";
  TVM_FFI_ICHECK(y.ndim() == 1) << "y must be a 1D tensor";
  DLDataType f32{kDLFloat, 32, 1};
  TVM_FFI_ICHECK(x.dtype() == f32) << "x must be a float32 tensor";
  TVM_FFI_ICHECK(y.dtype() == f32) << "y must be a float32 tensor";
  TVM_FFI_ICHECK(x.size(0) == y.size(0)) << "x and y must have the same shape";
  const float* xp = reinterpret_cast<const float*>(static_cast<const char*>(x.data_ptr()) + x.byte_offset());
  float* yp = reinterpret_cast<float*>(static_cast<char*>(y.data_ptr()) + y.byte_offset());
  for (int64_t i = 0; i < x.size(0); ++i) {
    yp[i * y.stride(0)] = xp[i * x.stride(0)] + 1;
  }
}
"""


# For the cases of one library (support.isolation.WORKER_CPP): add_one above; size0, which reads
# only the shape; call_on_worker, which calls back from a worker thread; keep and
# drop_kept_on_worker, which keep a tensor and drop it on a worker thread.
WORKER_SOURCE = r"""
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <thread>

namespace ffi = tvm::ffi;

""" + ADD_ONE + r"""
// Reads only the shape.
int64_t size0(ffi::TensorView x) { return x.size(0); }

// Runs cb on a worker thread and waits for it (a Python callback there needs the GIL).
void call_on_worker(ffi::Function cb) {
  std::thread worker([&] { cb(); });
  worker.join();
}

// Keeps a tensor until drop_kept_on_worker.
static ffi::Optional<ffi::Tensor> kept;
void keep(ffi::Tensor t) { kept = t; }

// Drops the kept tensor's last reference on a worker thread (its deleter needs the GIL)
// and waits for it.
void drop_kept_on_worker() {
  std::thread worker([] { kept = ffi::Optional<ffi::Tensor>(); });
  worker.join();
}
"""
WORKER_FUNCTIONS = ["add_one", "size0", "call_on_worker", "keep", "drop_kept_on_worker"]
