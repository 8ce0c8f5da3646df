"""``f(*args)`` against ``tvmfast.bind(f)(*args)`` over a table of argument kinds and error cases.

Each row names a callee and builds its arguments from a seeded generator; the row is run twice
on equal but distinct arguments (fresh random values each run, the seed is printed): once
directly (``rt_mod(*args)`` for a TVM kernel, ``func(*args)`` for a ``tvm_ffi.Function``,
``mod.name(*args)`` for a ``tvm_ffi.cpp.load_inline`` module) and once through bind
(``tvmfast.bind(rt_mod)``, ``tvmfast.bind(func)``, ``tvmfast.bind(mod, "name")``: the way a
user binds each, with bind's defaults).  The outcomes must be the same:

* both return: the same value, compared by structure: the exact type at every level (a
  ``tvm_ffi.Array`` holding torch tensors is not one holding ``tvm_ffi.Tensor``), tensors by
  dtype, shape, strides, device and value (``torch.testing`` / ``numpy.testing``, NaN equal to
  NaN), containers element by element, callables returned by calling both on a probe;
  which argument the result *is* (identity), and which arguments a result tensor shares its
  data with, must agree; and the arguments afterwards (what a kernel wrote) must be equal;
* both raise: the same exception type and the same message, and the same ``kind`` and
  message in ``__tvm_ffi_error__`` where the direct call's exception has one.

Normalisations (what legitimately differs between the two runs, and nothing else):

* hexadecimal addresses (``0x7f...``) in messages and reprs become ``0x?``: the two runs use
  distinct argument objects, so their reprs and data addresses differ;
* a torch C++ error's backtrace (from the line ``Exception raised from ...`` to the end of the
  message) is dropped: its frames depend on the caller's stack;
* the backtrace of ``__tvm_ffi_error__`` is not compared: it names the Python frames of the
  caller, which differ by construction (tvmfast's own frames versus tvm_ffi's).

Deliberate differences (documented in docs/safety.md; each is checked, not skipped):

* a torch tensor with its lazy negation/conjugation bit set: tvm_ffi passes it as if the bit
  were not set (a silently wrong value); bind refuses it with a ``ValueError`` naming the
  argument and saying how to resolve it;
* a tensor its producer cannot export (meta, sparse, unsupported numpy dtypes): bind raises the
  same exception type, with a message that names the argument and carries the producer's reason
  (the direct message's first line) without its C++ backtrace.

A failure names its category: [argument refused], [alignment pre-check], [result differs],
[identity differs], [arguments differ after the call], [exception type differs], [error message
differs], [bind accepts what the direct call refuses], [crash], [hang].

Crash safety: every row runs in a forked child process (a segfault fails that row with
[crash] and the name of the call that was running, and the suite goes on).  Callees are built
in the parent first.  Set TVMFAST_TABLE_IN_PROCESS=1 to run rows in-process (for debugging).
"""
from __future__ import annotations

import contextlib
import ctypes
import enum
import functools
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
import tvm_ffi
import tvm_ffi.cpp

import tvmfast
from support import tvm_kernels as kernels
from support.buffers import same_bits, torch_at
from support.cpp_sources import ADD_ONE
from support.isolation import run_forked

torch = pytest.importorskip("torch")  # the table is built from torch tensors throughout

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - optional
    ml_dtypes = None

ROW_TIMEOUT_S = 300


# ---------------------------------------------------------------------------
# Argument kinds: classes with the protocols tvm_ffi honours, subclasses of builtins.
# ---------------------------------------------------------------------------
class MyStr(str):
    pass


class MyBytes(bytes):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyTuple(tuple):
    __slots__ = ()


class MyList(list):
    pass


class MyDict(dict):
    pass


class Color(enum.IntEnum):
    RED = 3


class Pair(NamedTuple):
    a: Any
    b: Any


class Opaque:
    """An arbitrary Python object (tvm_ffi passes it as an opaque object)."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Opaque({self.value!r})"


class CustomError(Exception):
    pass


class FFIObjectHolder:
    def __init__(self, obj):
        self.obj = obj

    def __tvm_ffi_object__(self):
        return self.obj


class ValueHolder:
    def __init__(self, value):
        self.value = value

    def __tvm_ffi_value__(self):
        return self.value


class IntLike:
    def __init__(self, value):
        self.value = value

    def __tvm_ffi_int__(self):
        return self.value


class FloatLike:
    def __init__(self, value):
        self.value = value

    def __tvm_ffi_float__(self):
        return self.value


class OpaquePtrLike:
    def __init__(self, value):
        self.value = value

    def __tvm_ffi_opaque_ptr__(self):
        return self.value


class DTypeLike:
    def __init__(self, code, bits, lanes):
        self.value = (code, bits, lanes)

    def __dlpack_data_type__(self):
        return self.value


class DeviceLike:
    def __init__(self, device_type, index):
        self.value = (device_type, index)

    def __dlpack_device__(self):
        return self.value


class CudaStreamLike:
    def __init__(self, handle):
        self.handle = handle

    def __cuda_stream__(self):
        return (0, self.handle)


class DLPackOnly:
    """A tensor-like object with ``__dlpack__`` but no DLPack C exchange API."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __dlpack__(self, *args, **kwargs):
        return self.tensor.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


class TorchSubclass(torch.Tensor):
    pass


class CallableObject:
    def __call__(self, x):
        return x * 3


def _plus_one(x):
    return x + 1


# ---------------------------------------------------------------------------
# Argument builders (g: a seeded torch.Generator; every row builds its arguments twice).
# ---------------------------------------------------------------------------
def t32(g, *shape):
    return torch.randn(shape, generator=g)


def np_at(values, offset: int, align: int = 64) -> np.ndarray:
    """A numpy copy of ``values`` whose data lies ``offset`` bytes past an ``align``-byte
    boundary (numpy's own allocations are 16-byte aligned at best, unpredictably more)."""
    values = np.ascontiguousarray(values)
    raw = np.empty(values.nbytes + align + offset, dtype=np.uint8)
    start = (-raw.ctypes.data) % align + offset
    out = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


def np32(g, *shape, offset=0):
    return np_at(t32(g, *shape).numpy(), offset)


def ffi_tensor(g, *shape):
    return tvm_ffi.from_dlpack(np32(g, *shape))


def readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def raised_exception():
    try:
        raise CustomError("raised here")
    except CustomError as e:
        return e


def echo_array_with_torch(g):
    """A tvm_ffi.Array that tvm_ffi returned for torch inputs (tagged for lazy conversion)."""
    return tvm_ffi.get_global_func("testing.make_array_with_tensor")(t32(g, 4))


# ---------------------------------------------------------------------------
# Callees: (direct, bound), built once per process, in the parent before any fork.
# ---------------------------------------------------------------------------
INLINE_SOURCE = r"""
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/dtype.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/optional.h>
#include <tvm/ffi/string.h>

namespace ffi = tvm::ffi;

""" + ADD_ONE + r"""

ffi::Tensor identity(ffi::Tensor x) { return x; }

ffi::Tensor plus_one_new(ffi::TensorView x) {
  DLDataType f32{kDLFloat, 32, 1};
  TVM_FFI_ICHECK(x.ndim() == 1 && x.dtype() == f32) << "x must be a 1D float32 tensor";
  ffi::Tensor y = ffi::Tensor::FromEnvAlloc(TVMFFIEnvTensorAlloc, ffi::Shape({x.size(0)}), f32, x.device());
  const float* xp = reinterpret_cast<const float*>(static_cast<const char*>(x.data_ptr()) + x.byte_offset());
  for (int64_t i = 0; i < x.size(0); ++i) {
    static_cast<float*>(y.data_ptr())[i] = xp[i * x.stride(0)] + 1;
  }
  return y;
}

ffi::Array<ffi::Tensor> pair(ffi::Tensor a, ffi::Tensor b) { return {a, b}; }

ffi::Map<ffi::String, ffi::Tensor> named(ffi::Tensor a) { return {{"a", a}}; }

int64_t sum_ints(ffi::Array<int64_t> xs) {
  int64_t total = 0;
  for (int64_t x : xs) total += x;
  return total;
}

int64_t str_size(ffi::String s) { return static_cast<int64_t>(s.size()); }

int64_t bytes_size(ffi::Bytes b) { return static_cast<int64_t>(b.size()); }

ffi::Any call_with(ffi::Function f, ffi::Any x) { return f(x); }

bool has_tensor(ffi::Optional<ffi::Tensor> t) { return t.has_value(); }

ffi::String dtype_str(DLDataType dt) { return ffi::DLDataTypeToString(dt); }

int64_t device_code(DLDevice dev) { return dev.device_type * 100 + dev.device_id; }
"""
INLINE_FUNCTIONS = ["add_one", "identity", "plus_one_new", "pair", "named", "sum_ints", "str_size",
                    "bytes_size", "call_with", "has_tensor", "dtype_str", "device_code"]

RET_INT_SRC = '''
@T.prim_func
def main(x: T.int32) -> T.int32:
    T.func_attr({"global_symbol": "main"})
    if x > 0:
        return 10
    else:
        return 20
'''

COPY2D_SRC = '''
@T.prim_func
def main(a: T.handle, b: T.handle):
    T.func_attr({"global_symbol": "main", "tir.noalias": True})
    A = T.match_buffer(a, (16, 8), "float32")
    B = T.match_buffer(b, (16, 8), "float32")
    for i, j in T.grid(16, 8):
        B[i, j] = A[i, j] * T.float32(2)
'''


def _py_types(*xs):
    """What a Python callback receives: the type names of its arguments."""
    return ",".join(type(x).__qualname__ for x in xs)


def _py_raise_value(x):
    raise ValueError(f"boom {x}")


def _py_raise_custom(x):
    raise CustomError(f"custom {x}")


def _py_raise_key(x):
    raise KeyError(x)


_PY_CALLBACKS = {
    "first": lambda x: x,
    "types": _py_types,
    "raise_value": _py_raise_value,
    "raise_custom": _py_raise_custom,
    "raise_key": _py_raise_key,
    "returns_tuple": lambda x: (x, 1, "two"),
    "returns_dict": lambda x: {"x": x},
    "returns_bytearray": lambda: bytearray(b"abc"),
    "returns_np_int": lambda: np.int64(7),
    "returns_np_float": lambda: np.float32(0.5),
    "returns_new_torch": lambda: torch.arange(4.0),
    "returns_opaque": lambda: Opaque(1),
}

_CALLEES: dict[str, tuple] = {}


def _inline_module():
    if "inline" not in _CALLEES:
        try:
            _CALLEES["inline"] = tvm_ffi.cpp.load_inline(
                name="tvmfast_compat_table", cpp_sources=INLINE_SOURCE, functions=INLINE_FUNCTIONS)
        except Exception as e:  # no C++ toolchain: those rows skip
            _CALLEES["inline"] = e
    mod = _CALLEES["inline"]
    if isinstance(mod, Exception):
        pytest.skip(f"tvm_ffi.cpp.load_inline failed here: {mod}")
    return mod


def _tvm_kernel(name):
    builders = {
        "add": lambda: kernels.build_add(128, "float32"),
        "add_any": lambda: kernels.build_add(128, "float32", offset_factor=1),
        "add_f16": lambda: kernels.build_add(256, "float16"),
        "add_dyn": lambda: kernels.build_add_dynamic("float32"),
        "scale": lambda: kernels.build_scale(64),
        "ret_int": lambda: kernels.build_tvmscript(RET_INT_SRC, "llvm"),
        "copy2d": lambda: kernels.build_tvmscript(COPY2D_SRC, "llvm"),
    }
    return builders[name]()


def _warm_up_errors(direct) -> None:
    """Raise one error through ``direct`` in this (parent) process: tvm_ffi's first error in a
    process loads the symbols for its backtrace (seconds); forked children inherit them."""
    with contextlib.suppress(Exception):
        direct(object(), object(), object(), object(), object())
    if "warm" not in _CALLEES:  # tvmfast's one-time torch set-up, also inherited by the children
        _CALLEES["warm"] = tvmfast.bind(tvm_ffi.get_global_func("testing.echo"))(torch.empty(0))


def callee(spec: str):
    """(direct, bound) for ``kind:name``: ffi (a global function), py (a Python callback made a
    tvm_ffi.Function), tvm (a TVM kernel's runtime module), inline (a load_inline function)."""
    if spec not in _CALLEES:
        kind, name = spec.split(":", 1)
        if kind == "ffi":
            func = tvm_ffi.get_global_func(name)
            pair = (func, tvmfast.bind(func))
        elif kind == "py":
            func = tvm_ffi.convert(_PY_CALLBACKS[name])
            pair = (func, tvmfast.bind(func))
        elif kind == "tvm":
            try:
                rt_mod = _tvm_kernel(name)
            except ImportError as e:  # apache-tvm is only needed to build kernels
                pytest.skip(f"needs apache-tvm to build the kernel: {e}")
            pair = (rt_mod, tvmfast.bind(rt_mod))
        elif kind == "inline":
            mod = _inline_module()
            pair = (getattr(mod, name), tvmfast.bind(mod, name))
        else:
            raise ValueError(spec)
        _warm_up_errors(pair[0])
        _CALLEES[spec] = pair
    return _CALLEES[spec]


# ---------------------------------------------------------------------------
# The table.
# ---------------------------------------------------------------------------
def is_lazy_view_refusal(exc) -> bool:
    """bind's refusal of a torch tensor with its lazy neg/conj bit set."""
    return (isinstance(exc, ValueError)
            and re.match(r"tvmfast: argument #\d+: tensor has its (negative|conjugate) bit set \(a lazy view\)",
                         str(exc)) is not None)


def is_export_error_naming_the_argument(e_d, e_b) -> bool:
    """bind's form of a producer's export error: the argument named, the producer's reason kept."""
    m = re.match(r"tvmfast: argument #\d+: \w+ cannot be passed as a DLPack tensor: (.*)$", normalise(str(e_b)), re.S)
    return m is not None and m.group(1) == normalise(str(e_d)).split("\n", 1)[0].strip()


@dataclass(frozen=True)
class Row:
    id: str
    callee: str
    make: Any  # g -> tuple of arguments
    probe: tuple | None = None  # arguments to call a returned function with


ROWS: list[Row] = []


def rows(callee_spec, cases, probe=None):
    for case_id, make in cases.items():
        ROWS.append(Row(f"{callee_spec}-{case_id}", callee_spec, make, probe))


# testing.echo: every argument kind tvm_ffi converts (the result is what tvm_ffi makes of it).
rows("ffi:testing.echo", {
    "none": lambda g: (None,),
    "true": lambda g: (True,),
    "int": lambda g: (int(torch.randint(-100, 100, (1,), generator=g)),),
    "int64-max": lambda g: (2**63 - 1,),
    "int64-min": lambda g: (-(2**63),),
    "int-2**63": lambda g: (2**63,),
    "int-2**64": lambda g: (2**64,),
    "int-minus-2**100": lambda g: (-(2**100),),
    "float": lambda g: (float(torch.randn(1, generator=g)),),
    "float-nan": lambda g: (math.nan,),
    "float-neg-zero": lambda g: (-0.0,),
    "float-inf": lambda g: (math.inf,),
    "str": lambda g: ("hello",),
    "str-empty": lambda g: ("",),
    "str-long": lambda g: ("x" * 200,),
    "str-nul": lambda g: ("a\0b",),
    "str-non-ascii": lambda g: ("h\u00e9llo \u2713",),
    "str-subclass": lambda g: (MyStr("sub"),),
    "ffi-String": lambda g: (tvm_ffi.core.String("ffi string"),),
    "bytes": lambda g: (b"abc",),
    "bytes-long": lambda g: (b"\x00\xff" * 100,),
    "bytes-subclass": lambda g: (MyBytes(b"sub"),),
    "bytearray": lambda g: (bytearray(b"xyz"),),
    "ffi-Bytes": lambda g: (tvm_ffi.core.Bytes(b"ffi bytes"),),
    "memoryview": lambda g: (memoryview(b"mv"),),
    "int-subclass": lambda g: (MyInt(5),),
    "float-subclass": lambda g: (MyFloat(2.5),),
    "intenum": lambda g: (Color.RED,),
    "list": lambda g: ([1, 2.5, "three"],),
    "list-empty": lambda g: ([],),
    "list-nested": lambda g: ([[1], [2, [3]]],),
    "list-subclass": lambda g: (MyList([1, 2]),),
    "tuple": lambda g: ((1, "a", None),),
    "tuple-subclass": lambda g: (MyTuple((1, 2)),),
    "namedtuple": lambda g: (Pair(1, "b"),),
    "list-of-torch": lambda g: ([t32(g, 4), t32(g, 3)],),
    "list-of-numpy": lambda g: ([np32(g, 4)],),
    "dict": lambda g: ({"a": 1, "b": [2, 3]},),
    "dict-int-keys": lambda g: ({1: "a", 2: "b"},),
    "dict-subclass": lambda g: (MyDict(a=1),),
    "dict-of-torch": lambda g: ({"t": t32(g, 4)},),
    "ffi-Array": lambda g: (tvm_ffi.Array([1, 2, 3]),),
    "ffi-List": lambda g: (tvm_ffi.List([1, "x"]),),
    "ffi-Map": lambda g: (tvm_ffi.Map({"k": 1}),),
    "ffi-Dict": lambda g: (tvm_ffi.Dict({"k": 2}),),
    "ffi-Array-torch-tagged": lambda g: (echo_array_with_torch(g),),
    "set": lambda g: ({1, 2},),
    "range": lambda g: (range(3),),
    "complex": lambda g: (1 + 2j,),
    "object": lambda g: (Opaque(int(torch.randint(0, 9, (1,), generator=g))),),
    "bare-object": lambda g: (object(),),
    "ellipsis": lambda g: (...,),
    "exception": lambda g: (ValueError("boom"),),
    "exception-raised": lambda g: (raised_exception(),),
    "exception-key": lambda g: (KeyError("k"),),
    "torch-dtype": lambda g: (torch.float32,),
    "torch-dtype-bf16": lambda g: (torch.bfloat16,),
    "torch-dtype-bool": lambda g: (torch.bool,),
    "torch-dtype-fp8": lambda g: (torch.float8_e4m3fn,),
    "torch-dtype-uint16": lambda g: (torch.uint16,),
    "numpy-dtype": lambda g: (np.dtype("float16"),),
    "numpy-dtype-int8": lambda g: (np.dtype("int8"),),
    "numpy-scalar-type": lambda g: (np.float32,),
    "ffi-dtype": lambda g: (tvm_ffi.dtype("int4"),),
    "ffi-dtype-float32": lambda g: (tvm_ffi.float32,),
    "torch-device-cpu": lambda g: (torch.device("cpu"),),
    "torch-device-cuda1": lambda g: (torch.device("cuda", 1),),
    "torch-device-meta": lambda g: (torch.device("meta"),),
    "ffi-device": lambda g: (tvm_ffi.device("cuda:1"),),
    "ffi-Device-cpu": lambda g: (tvm_ffi.Device("cpu", 0),),
    "ffi-Shape": lambda g: (tvm_ffi.Shape((2, 3)),),
    "torch-Size": lambda g: (torch.Size([2, 3]),),
    "ctypes-void-p": lambda g: (ctypes.c_void_p(0x12345678),),
    "ctypes-void-p-null": lambda g: (ctypes.c_void_p(None),),
    "ctypes-int": lambda g: (ctypes.c_int(3),),
    "ctypes-pointer": lambda g: (ctypes.pointer(ctypes.c_int(3)),),
    "numpy-bool": lambda g: (np.bool_(True),),
    "numpy-int32": lambda g: (np.int32(7),),
    "numpy-uint64-max": lambda g: (np.uint64(2**64 - 1),),
    "numpy-float32": lambda g: (np.float32(0.5),),
    "numpy-float16": lambda g: (np.float16(1.5),),
    "protocol-ffi-object": lambda g: (FFIObjectHolder(tvm_ffi.Array([4, 5])),),
    "protocol-ffi-object-tensor": lambda g: (FFIObjectHolder(ffi_tensor(g, 4)),),
    "protocol-ffi-value": lambda g: (ValueHolder(10),),
    "protocol-ffi-value-list": lambda g: (ValueHolder([1, ValueHolder(2)]),),
    "protocol-ffi-value-nested": lambda g: (ValueHolder(ValueHolder(ValueHolder("deep"))),),
    "protocol-ffi-int": lambda g: (IntLike(11),),
    "protocol-ffi-float": lambda g: (FloatLike(1.25),),
    "protocol-opaque-ptr": lambda g: (OpaquePtrLike(0x1000),),
    "protocol-dlpack-dtype": lambda g: (DTypeLike(2, 16, 1),),
    "protocol-dlpack-device": lambda g: (DeviceLike(2, 1),),
    "protocol-cuda-stream": lambda g: (CudaStreamLike(1),),
    "protocol-dlpack-only": lambda g: (DLPackOnly(t32(g, 4)),),
    "torch": lambda g: (t32(g, 8),),
    "torch-0d": lambda g: (t32(g),),
    "torch-empty": lambda g: (torch.empty(0),),
    "torch-2d-transposed": lambda g: (t32(g, 4, 6).t(),),
    "torch-strided-view": lambda g: (t32(g, 32)[1::3],),
    "torch-int64": lambda g: (torch.randint(-9, 9, (5,), generator=g),),
    "torch-bool": lambda g: (t32(g, 5) > 0,),
    "torch-bf16": lambda g: (t32(g, 5).bfloat16(),),
    "torch-complex64": lambda g: (torch.complex(t32(g, 3), t32(g, 3)),),
    "torch-conj": lambda g: (torch.complex(t32(g, 3), t32(g, 3)).conj(),),
    "torch-neg-view": lambda g: (torch.complex(t32(g, 3), t32(g, 3)).conj().imag,),
    "torch-requires-grad": lambda g: (t32(g, 4).requires_grad_(),),
    "torch-parameter": lambda g: (torch.nn.Parameter(t32(g, 4)),),
    "torch-subclass": lambda g: (t32(g, 4).as_subclass(TorchSubclass),),
    "torch-meta": lambda g: (torch.empty(4, device="meta"),),
    "torch-sparse": lambda g: (t32(g, 4).to_sparse(),),
    "numpy": lambda g: (np32(g, 8),),
    "numpy-0d": lambda g: (np.array(1.5, dtype=np.float32),),
    "numpy-strided": lambda g: (np32(g, 32)[::4],),
    "numpy-fortran": lambda g: (np.asfortranarray(np32(g, 4, 6)),),
    "numpy-readonly": lambda g: (readonly(np32(g, 4)),),
    "numpy-bool-array": lambda g: (np32(g, 4) > 0,),
    "numpy-object-array": lambda g: (np.array([1, "a"], dtype=object),),
    "numpy-datetime": lambda g: (np.array(["2020-01-01"], dtype="datetime64[D]"),),
    "numpy-misaligned": lambda g: (np32(g, 8, offset=4),),
    "ffi-Tensor": lambda g: (ffi_tensor(g, 8),),
    "callable-lambda": lambda g: (lambda x: x + 1,),
    "callable-function": lambda g: (_plus_one,),
    "callable-partial": lambda g: (functools.partial(max, 0),),
    "callable-object": lambda g: (CallableObject(),),
    "callable-class": lambda g: (Opaque,),
    "callable-bound-function": lambda g: (tvmfast.bind(tvm_ffi.get_global_func("testing.add_one")),),
    "ffi-Function": lambda g: (tvm_ffi.get_global_func("testing.add_one"),),
}, probe=(4,))

if ml_dtypes is not None:
    rows("ffi:testing.echo", {
        "ml-dtypes-bfloat16": lambda g: (np.dtype(ml_dtypes.bfloat16),),
        "ml-dtypes-int4": lambda g: (np.dtype(ml_dtypes.int4),),
        "ml-dtypes-fp8": lambda g: (np.dtype(ml_dtypes.float8_e4m3fn),),
    })

# Typed parameters: tvm_ffi's conversions and its type errors.
rows("ffi:testing.schema_id_int", {
    "int": lambda g: (3,), "bool": lambda g: (True,), "numpy-int32": lambda g: (np.int32(3),),
    "numpy-bool": lambda g: (np.bool_(True),), "intenum": lambda g: (Color.RED,), "int-subclass": lambda g: (MyInt(4),),
    "protocol-int": lambda g: (IntLike(5),), "int-2**70": lambda g: (2**70,), "float": lambda g: (1.5,),
    "str": lambda g: ("3",), "none": lambda g: (None,), "torch-0d": lambda g: (torch.tensor(3),),
    "numpy-float64": lambda g: (np.float64(1.0),), "no-args": lambda g: (), "two-args": lambda g: (1, 2),
})
rows("ffi:testing.schema_id_float", {
    "float": lambda g: (1.5,), "int": lambda g: (2,), "bool": lambda g: (True,),
    "numpy-float32": lambda g: (np.float32(0.25),), "protocol-float": lambda g: (FloatLike(0.75),),
    "str": lambda g: ("x",), "none": lambda g: (None,), "torch-0d": lambda g: (torch.tensor(1.0),),
})
rows("ffi:testing.schema_id_bool", {
    "bool": lambda g: (False,), "int": lambda g: (1,), "numpy-bool": lambda g: (np.bool_(False),),
    "str": lambda g: ("x",), "none": lambda g: (None,),
})
rows("ffi:testing.schema_id_string", {
    "str": lambda g: ("abc",), "str-long": lambda g: ("y" * 300,), "str-subclass": lambda g: (MyStr("s"),),
    "ffi-String": lambda g: (tvm_ffi.core.String("f"),), "bytes": lambda g: (b"abc",), "int": lambda g: (1,),
    "none": lambda g: (None,),
})
rows("ffi:testing.schema_id_bytes", {
    "bytes": lambda g: (b"abc",), "bytearray": lambda g: (bytearray(b"ab"),),
    "ffi-Bytes": lambda g: (tvm_ffi.core.Bytes(b"f"),), "str": lambda g: ("abc",),
    "memoryview": lambda g: (memoryview(b"m"),),
})
rows("ffi:testing.schema_id_device", {
    "str-cpu": lambda g: ("cpu",), "str-cuda1": lambda g: ("cuda:1",), "torch-device": lambda g: (torch.device("cpu"),),
    "torch-device-cuda": lambda g: (torch.device("cuda", 2),), "ffi-device": lambda g: (tvm_ffi.device("cuda:1"),),
    "protocol-device": lambda g: (DeviceLike(1, 0),), "int": lambda g: (1,), "str-bogus": lambda g: ("bogus",),
})
rows("ffi:testing.schema_id_dtype", {
    "str": lambda g: ("float32",), "torch-dtype": lambda g: (torch.float16,),
    "numpy-dtype": lambda g: (np.dtype("int8"),),
    "ffi-dtype": lambda g: (tvm_ffi.dtype("bfloat16"),), "protocol-dtype": lambda g: (DTypeLike(0, 8, 1),),
    "int": lambda g: (1,), "str-bogus": lambda g: ("bogus",),
})
rows("ffi:testing.schema_id_tensor", {
    "torch": lambda g: (t32(g, 4),), "numpy": lambda g: (np32(g, 4),), "ffi-Tensor": lambda g: (ffi_tensor(g, 4),),
    "dlpack-only": lambda g: (DLPackOnly(t32(g, 4)),), "list": lambda g: ([1.0, 2.0],), "none": lambda g: (None,),
    "int": lambda g: (3,),
})
rows("ffi:testing.schema_id_dltensor", {
    "torch": lambda g: (t32(g, 4),), "numpy": lambda g: (np32(g, 4),),
})
rows("ffi:testing.schema_tensor_view_input", {
    "torch": lambda g: (t32(g, 4),), "numpy-misaligned": lambda g: (np32(g, 4, offset=4),),
})
rows("ffi:testing.optional_tensor_view_has_value", {
    "none": lambda g: (None,), "torch": lambda g: (t32(g, 4),), "numpy": lambda g: (np32(g, 4),),
})
rows("ffi:testing.schema_id_arr_int", {
    "list": lambda g: ([1, 2],), "tuple": lambda g: ((1, 2),), "empty": lambda g: ([],),
    "mixed": lambda g: ([1, "a"],), "torch-Size": lambda g: (torch.Size([3, 4]),),
    "ffi-Array": lambda g: (tvm_ffi.Array([5]),), "numpy": lambda g: (np.arange(3),),
})
rows("ffi:testing.schema_id_map_str_int", {
    "dict": lambda g: ({"a": 1},), "int-keys": lambda g: ({1: 1},), "str-values": lambda g: ({"a": "b"},),
    "ffi-Map": lambda g: (tvm_ffi.Map({"a": 2}),),
})
rows("ffi:testing.schema_id_opt_int", {"none": lambda g: (None,), "int": lambda g: (3,), "str": lambda g: ("x",)})
rows("ffi:testing.schema_id_variant_int_str", {
    "int": lambda g: (3,), "str": lambda g: ("a",), "float": lambda g: (1.5,),
})
rows("ffi:testing.schema_id_func", {
    "lambda": lambda g: (lambda x: x * 2,), "builtin": lambda g: (abs,), "int": lambda g: (3,),
}, probe=(-5,))
rows("ffi:testing.schema_id_object", {
    "ffi-Array": lambda g: (tvm_ffi.Array([1]),), "int": lambda g: (3,), "object": lambda g: (Opaque(2),),
})
rows("ffi:testing.add_one", {
    "int": lambda g: (41,), "object": lambda g: (Opaque(0),), "str": lambda g: ("x",), "int-2**70": lambda g: (2**70,),
    "none": lambda g: (None,),
})
rows("ffi:testing.test_raise_error", {
    kind: (lambda g, kind=kind: (kind, f"message for {kind}"))
    for kind in ["ValueError", "TypeError", "RuntimeError", "IndexError", "KeyError", "AttributeError",
                 "NotImplementedError", "SomeCustomKind"]
})
rows("ffi:testing.apply", {
    "py-callable": lambda g: (lambda a, b: a * b, 6, 7),
    "ffi-function": lambda g: (tvm_ffi.get_global_func("testing.add_one"), 1),
    "raising-callable": lambda g: (_py_raise_value, 9),
})
rows("ffi:testing.nop", {"no-args": lambda g: (), "args": lambda g: (1, "a", t32(g, 2))})

# Functions returning containers of tensors (tvm_ffi gives torch tensors inside for torch inputs).
rows("ffi:testing.make_array_with_tensor", {
    "torch": lambda g: (t32(g, 8),), "numpy": lambda g: (np32(g, 8),), "ffi-Tensor": lambda g: (ffi_tensor(g, 8),),
    "torch-int32": lambda g: (torch.randint(0, 9, (3,), generator=g, dtype=torch.int32),),
})
rows("ffi:testing.make_array_with_mixed", {"torch": lambda g: (t32(g, 4), 42), "numpy": lambda g: (np32(g, 4), 42)})
rows("ffi:testing.make_nested_array_with_tensor", {"torch": lambda g: (t32(g, 4),)})
rows("ffi:testing.make_list_with_tensor", {"torch": lambda g: (t32(g, 4), 7)})
rows("ffi:testing.make_map_with_tensor", {"torch": lambda g: (t32(g, 4),), "numpy": lambda g: (np32(g, 4),)})
rows("ffi:testing.make_dict_with_tensor", {"torch": lambda g: (t32(g, 4),)})
rows("ffi:testing.make_nested_map_with_tensor", {
    "torch": lambda g: (t32(g, 4), torch.randint(0, 9, (8,), generator=g, dtype=torch.int32)),
})
rows("ffi:testing.make_empty_array_with_tensor_input", {"torch": lambda g: (t32(g, 4),)})

# Python callbacks made tvm_ffi Functions: how arguments arrive, results, exceptions, arity.
rows("py:first", {
    "torch": lambda g: (t32(g, 4),), "numpy": lambda g: (np32(g, 4),), "list": lambda g: ([1, 2],),
    "object": lambda g: (Opaque(3),), "no-args": lambda g: (), "two-args": lambda g: (1, 2),
})
rows("py:types", {
    "scalars": lambda g: (1, 2.5, True, None, "s"),
    "tensors": lambda g: (t32(g, 4), np32(g, 4), ffi_tensor(g, 4)),
    "bytes-kinds": lambda g: (b"b", bytearray(b"ba"), MyBytes(b"mb"), tvm_ffi.core.Bytes(b"fb")),
    "str-kinds": lambda g: (MyStr("ms"), tvm_ffi.core.String("fs"), "y" * 100),
    "containers": lambda g: ([1], (2,), {"k": 3}, tvm_ffi.Shape((1,))),
    "numpy-scalars": lambda g: (np.bool_(True), np.int32(1), np.float32(1.0)),
    "dtypes-devices": lambda g: (torch.float32, np.dtype("int8"), torch.device("cpu"), tvm_ffi.device("cuda:0")),
    "protocols": lambda g: (IntLike(1), FloatLike(1.0), ValueHolder(2), DTypeLike(2, 32, 1), DeviceLike(1, 0)),
    "big-int": lambda g: (2**70,),
    "opaque": lambda g: (Opaque(1), ctypes.c_void_p(16)),
})
rows("py:raise_value", {"int": lambda g: (1,), "torch": lambda g: (t32(g, 2),)})
rows("py:raise_custom", {"int": lambda g: (2,)})
rows("py:raise_key", {"str": lambda g: ("missing",)})
rows("py:returns_tuple", {"int": lambda g: (1,), "torch": lambda g: (t32(g, 3),)})
rows("py:returns_dict", {"int": lambda g: (1,), "torch": lambda g: (t32(g, 3),)})
rows("py:returns_bytearray", {"no-args": lambda g: ()})
rows("py:returns_np_int", {"no-args": lambda g: ()})
rows("py:returns_np_float", {"no-args": lambda g: ()})
rows("py:returns_new_torch", {"no-args": lambda g: ()})
rows("py:returns_opaque", {"no-args": lambda g: ()})


# A TVM kernel: C = A + B, 128 float32, default buffers (TVM may assume aligned data).
def _add_args(g, a=None, b=None, c=None):
    return (t32(g, 128) if a is None else a, t32(g, 128) if b is None else b,
            torch.full((128,), math.nan) if c is None else c)


rows("tvm:add", {
    "torch": lambda g: _add_args(g),
    "numpy-64-aligned": lambda g: (np32(g, 128), np32(g, 128), np32(g, 128)),
    "numpy-16-byte-offset": lambda g: (np32(g, 128, offset=16), np32(g, 128, offset=16), np32(g, 128, offset=16)),
    "numpy-own-allocation": lambda g: (t32(g, 128).numpy().copy(), t32(g, 128).numpy().copy(),
                                       np.zeros(128, np.float32)),
    "torch-16-byte-offset-view": lambda g: (torch_at(g, 128, 4), torch_at(g, 128, 4), torch_at(g, 128, 4)),
    "ffi-Tensor": lambda g: (ffi_tensor(g, 128), ffi_tensor(g, 128), ffi_tensor(g, 128)),
    "mixed-kinds": lambda g: (t32(g, 128), np32(g, 128), ffi_tensor(g, 128)),
    "dlpack-only": lambda g: _add_args(g, a=DLPackOnly(t32(g, 128))),
    "protocol-ffi-object": lambda g: _add_args(g, a=FFIObjectHolder(ffi_tensor(g, 128))),
    "torch-subclass": lambda g: _add_args(g, a=t32(g, 128).as_subclass(TorchSubclass)),
    "torch-parameter": lambda g: _add_args(g, a=torch.nn.Parameter(t32(g, 128))),
    "torch-requires-grad": lambda g: _add_args(g, a=t32(g, 128).requires_grad_()),
    "wrong-dtype-float64": lambda g: _add_args(g, c=torch.zeros(128, dtype=torch.float64)),
    "wrong-dtype-int32": lambda g: _add_args(g, a=torch.zeros(128, dtype=torch.int32)),
    "wrong-dtype-numpy-float16": lambda g: (np32(g, 128).astype(np.float16), np32(g, 128), np32(g, 128)),
    "wrong-shape": lambda g: _add_args(g, c=t32(g, 64)),
    "wrong-shape-numpy": lambda g: (np32(g, 128), np32(g, 100), np32(g, 128)),
    "wrong-ndim": lambda g: _add_args(g, b=t32(g, 128, 1)),
    "wrong-ndim-0d": lambda g: _add_args(g, c=torch.tensor(1.0)),
    "strided-view": lambda g: _add_args(g, c=t32(g, 256)[::2]),
    "strided-view-numpy": lambda g: (np32(g, 128), np32(g, 128), np32(g, 256)[::2]),
    "strided-misaligned-view": lambda g: _add_args(g, a=t32(g, 257)[1::2]),
    "strided-misaligned-view-numpy": lambda g: (np32(g, 257, offset=4)[::2], np32(g, 128), np32(g, 128)),
    "transposed-into-1d": lambda g: _add_args(g, c=t32(g, 8, 16).t()),
    "meta-device": lambda g: _add_args(g, b=torch.empty(128, device="meta")),
    "sparse": lambda g: _add_args(g, c=t32(g, 128).to_sparse()),
    "complex-conj": lambda g: _add_args(g, a=torch.complex(t32(g, 128), t32(g, 128)).conj()),
    "count-2": lambda g: _add_args(g)[:2],
    "count-4": lambda g: (*_add_args(g), t32(g, 128)),
    "count-0": lambda g: (),
    "none": lambda g: (t32(g, 128), None, t32(g, 128)),
    "int": lambda g: _add_args(g)[:2] + (7,),
    "float": lambda g: (1.5,) + _add_args(g)[1:],
    "str": lambda g: (t32(g, 128), "a", t32(g, 128)),
    "bytes": lambda g: (t32(g, 128), b"a", t32(g, 128)),
    "list": lambda g: _add_args(g)[:2] + ([1.0] * 128,),
    "dict": lambda g: _add_args(g)[:2] + ({},),
    "object": lambda g: (Opaque(1),) + _add_args(g)[1:],
    "int-2**70": lambda g: _add_args(g)[:2] + (2**70,),
    "torch-dtype": lambda g: (torch.float32,) + _add_args(g)[1:],
    "numpy-scalar": lambda g: (np.float32(1),) + _add_args(g)[1:],
})

# Buffers with offset_factor=1: any data address (rt_mod works on misaligned views).
rows("tvm:add_any", {
    "torch-aligned": lambda g: (t32(g, 128), t32(g, 128), t32(g, 128)),
    "torch-4-byte-offset-views": lambda g: (torch_at(g, 128, 1), torch_at(g, 128, 3), torch_at(g, 128, 5)),
    "numpy-4-byte-offset": lambda g: (np32(g, 128, offset=4), np32(g, 128, offset=8), np32(g, 128, offset=12)),
    "ffi-Tensor-4-byte-offset": lambda g: tuple(tvm_ffi.from_dlpack(np32(g, 128, offset=4)) for _ in range(3)),
    "strided-misaligned-view": lambda g: (t32(g, 257)[1::2], t32(g, 128), t32(g, 128)),
})
rows("tvm:add_f16", {
    "torch": lambda g: (t32(g, 256).half(), t32(g, 256).half(), torch.zeros(256, dtype=torch.float16)),
    "bf16": lambda g: (t32(g, 256).bfloat16(), t32(g, 256).half(), torch.zeros(256, dtype=torch.float16)),
})
rows("tvm:add_dyn", {
    "n-1": lambda g: (t32(g, 1), t32(g, 1), t32(g, 1)),
    "n-100": lambda g: (t32(g, 100), t32(g, 100), t32(g, 100)),
    "n-0": lambda g: (torch.empty(0), torch.empty(0), torch.empty(0)),
    "numpy-16-byte-offset": lambda g: (np32(g, 33, offset=16), np32(g, 33, offset=16), np32(g, 33, offset=16)),
    "length-mismatch": lambda g: (t32(g, 10), t32(g, 11), t32(g, 10)),
    "ndim-2": lambda g: (t32(g, 2, 5), t32(g, 2, 5), t32(g, 2, 5)),
})
rows("tvm:scale", {
    "ok": lambda g: (t32(g, 64), t32(g, 64), 2.0, 3),
    "alpha-int": lambda g: (t32(g, 64), t32(g, 64), 2, 3),
    "alpha-bool": lambda g: (t32(g, 64), t32(g, 64), True, 3),
    "alpha-numpy-float32": lambda g: (t32(g, 64), t32(g, 64), np.float32(0.5), 3),
    "alpha-float-subclass": lambda g: (t32(g, 64), t32(g, 64), MyFloat(0.5), 3),
    "alpha-protocol-float": lambda g: (t32(g, 64), t32(g, 64), FloatLike(0.5), 3),
    "alpha-torch-0d": lambda g: (t32(g, 64), t32(g, 64), torch.tensor(2.0), 3),
    "alpha-str": lambda g: (t32(g, 64), t32(g, 64), "2", 3),
    "alpha-none": lambda g: (t32(g, 64), t32(g, 64), None, 3),
    "shift-float": lambda g: (t32(g, 64), t32(g, 64), 2.0, 1.5),
    "shift-bool": lambda g: (t32(g, 64), t32(g, 64), 2.0, True),
    "shift-numpy-int64": lambda g: (t32(g, 64), t32(g, 64), 2.0, np.int64(3)),
    "shift-numpy-bool": lambda g: (t32(g, 64), t32(g, 64), 2.0, np.bool_(True)),
    "shift-intenum": lambda g: (t32(g, 64), t32(g, 64), 2.0, Color.RED),
    "shift-int-subclass": lambda g: (t32(g, 64), t32(g, 64), 2.0, MyInt(3)),
    "shift-protocol-int": lambda g: (t32(g, 64), t32(g, 64), 2.0, IntLike(3)),
    "shift-2**40": lambda g: (t32(g, 64), t32(g, 64), 2.0, 2**40),
    "shift-2**70": lambda g: (t32(g, 64), t32(g, 64), 2.0, 2**70),
    "shift-none": lambda g: (t32(g, 64), t32(g, 64), 2.0, None),
})
rows("tvm:ret_int", {
    "positive": lambda g: (5,), "negative": lambda g: (-5,), "bool": lambda g: (True,),
    "numpy-int": lambda g: (np.int16(4),), "float": lambda g: (1.5,), "str": lambda g: ("x",),
    "tensor": lambda g: (t32(g, 8),), "count-0": lambda g: (),
})
rows("tvm:copy2d", {
    "torch": lambda g: (t32(g, 16, 8), t32(g, 16, 8)),
    "numpy": lambda g: (np32(g, 16, 8), np32(g, 16, 8)),
    "transposed": lambda g: (t32(g, 8, 16).t(), t32(g, 16, 8)),
    "transposed-numpy-fortran": lambda g: (np.asfortranarray(np32(g, 16, 8)), np32(g, 16, 8)),
    "transposed-misaligned": lambda g: (t32(g, 129)[1:].reshape(8, 16).t(), t32(g, 16, 8)),
    "row-slice-view": lambda g: (t32(g, 16, 16)[:, :8], t32(g, 16, 8)),
    "channels-wrong-ndim": lambda g: (t32(g, 16, 8, 1), t32(g, 16, 8)),
})

# A C++ function (tvm_ffi.cpp.load_inline): TensorView assumes no alignment.
rows("inline:add_one", {
    "torch": lambda g: (t32(g, 16), torch.full((16,), math.nan)),
    "numpy": lambda g: (np32(g, 16), np32(g, 16)),
    "numpy-own-allocation": lambda g: (t32(g, 16).numpy().copy(), np.zeros(16, np.float32)),
    "numpy-4-byte-offset": lambda g: (np32(g, 16, offset=4), np32(g, 16, offset=12)),
    "numpy-misaligned-view": lambda g: (np32(g, 17)[1:], np32(g, 17)[1:]),
    "torch-4-byte-offset-views": lambda g: (torch_at(g, 16, 1), torch_at(g, 16, 3)),
    "strided-views": lambda g: (t32(g, 48)[1::3], t32(g, 32)[::2]),
    "ffi-Tensor-misaligned": lambda g: (tvm_ffi.from_dlpack(np32(g, 16, offset=4)), np32(g, 16)),
    "wrong-ndim": lambda g: (t32(g, 4, 4), t32(g, 16)),
    "wrong-dtype": lambda g: (t32(g, 16).double(), t32(g, 16)),
    "count-1": lambda g: (t32(g, 16),),
    "str": lambda g: ("x", t32(g, 16)),
})
rows("inline:identity", {
    "torch": lambda g: (t32(g, 8),), "numpy": lambda g: (np32(g, 8),), "ffi-Tensor": lambda g: (ffi_tensor(g, 8),),
    "torch-view": lambda g: (t32(g, 20)[3:11],), "int": lambda g: (3,),
})
rows("inline:plus_one_new", {"torch": lambda g: (t32(g, 8),), "numpy": lambda g: (np32(g, 8),)})
rows("inline:pair", {
    "torch": lambda g: (t32(g, 4), t32(g, 5)), "numpy": lambda g: (np32(g, 4), np32(g, 5)),
    "mixed": lambda g: (np32(g, 4), t32(g, 5)),
})
rows("inline:named", {"torch": lambda g: (t32(g, 4),), "numpy": lambda g: (np32(g, 4),)})
rows("inline:sum_ints", {
    "list": lambda g: ([1, 2, 3],), "tuple": lambda g: ((4, 5),), "ffi-Array": lambda g: (tvm_ffi.Array([6, 7]),),
    "torch-Size": lambda g: (torch.Size([2, 3]),), "mixed": lambda g: ([1, "a"],), "numpy": lambda g: (np.arange(3),),
})
rows("inline:str_size", {
    "str": lambda g: ("h\u00e9llo",), "str-subclass": lambda g: (MyStr("abc"),),
    "ffi-String": lambda g: (tvm_ffi.core.String("xy"),), "bytes": lambda g: (b"abc",),
})
rows("inline:bytes_size", {
    "bytes": lambda g: (b"abc",), "bytearray": lambda g: (bytearray(b"abcd"),),
    "ffi-Bytes": lambda g: (tvm_ffi.core.Bytes(b"ab"),), "str": lambda g: ("abc",),
})
rows("inline:call_with", {
    "lambda": lambda g: (lambda x: x * 2, 21), "builtin": lambda g: (len, [1, 2]),
    "ffi-function": lambda g: (tvm_ffi.get_global_func("testing.add_one"), 1),
    "bound-function": lambda g: (tvmfast.bind(tvm_ffi.get_global_func("testing.add_one")), 2),
    "raising": lambda g: (_py_raise_value, 3), "not-callable": lambda g: (3, 1),
})
rows("inline:has_tensor", {
    "none": lambda g: (None,), "torch": lambda g: (t32(g, 2),), "numpy": lambda g: (np32(g, 2),),
})
rows("inline:dtype_str", {
    "torch": lambda g: (torch.bfloat16,), "numpy": lambda g: (np.dtype("uint8"),), "str": lambda g: ("int16",),
    "ffi-dtype": lambda g: (tvm_ffi.dtype("float8_e4m3fn"),), "protocol": lambda g: (DTypeLike(2, 64, 1),),
    "int": lambda g: (3,),
})
rows("inline:device_code", {
    "torch": lambda g: (torch.device("cpu"),), "ffi-device": lambda g: (tvm_ffi.device("cuda:1"),),
    "str": lambda g: ("cuda:2",), "protocol": lambda g: (DeviceLike(2, 3),), "int": lambda g: (1,),
})


# ---------------------------------------------------------------------------
# Outcomes and their comparison.
# ---------------------------------------------------------------------------
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_TORCH_CPP_BACKTRACE = re.compile(r"\nException raised from .*", re.DOTALL)


def normalise(text: str) -> str:
    """Hexadecimal addresses differ between the two runs (distinct argument objects); a torch
    C++ error carries the C++ backtrace of where it was raised (``Exception raised from ...``
    and numbered frames, which depend on the caller's stack depth): dropped."""
    return _ADDRESS.sub("0x?", _TORCH_CPP_BACKTRACE.sub("", text))


@dataclass
class Outcome:
    value: Any = None
    exc: BaseException | None = None


def run_call(fn, args) -> Outcome:
    try:
        return Outcome(value=fn(*args))
    except Exception as e:
        return Outcome(exc=e)


def describe_exc(e: BaseException) -> str:
    return f"{type(e).__qualname__}: {normalise(str(e))}"


def data_address(x):
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided or x.device.type == "meta":
            return None
        return x.data_ptr()
    if isinstance(x, np.ndarray):
        return x.__array_interface__["data"][0]
    if isinstance(x, tvm_ffi.Tensor):
        if hasattr(x, "data_ptr"):
            return x.data_ptr()
        # apache-tvm-ffi 0.1.12 (tox env tvm025) has no Tensor.data_ptr: the same address (data plus
        # byte offset) through a DLPack view
        return torch.from_dlpack(x).data_ptr()
    return None


def tensor_values(x):
    """CPU torch view of a tensor's values (None where values cannot be read)."""
    with contextlib.suppress(Exception):
        if isinstance(x, torch.Tensor):
            if x.device.type == "meta":
                return None
            return x.detach().resolve_conj().resolve_neg() if x.layout == torch.strided else x.to_dense()
        if isinstance(x, np.ndarray):
            return torch.from_numpy(x) if x.dtype != object else None
        if isinstance(x, tvm_ffi.Tensor):
            return torch.from_dlpack(x)
    return None


class Comparison:
    def __init__(self, args_d, args_b, probe):
        self.args_d, self.args_b, self.probe = args_d, args_b, probe
        self.problems: list[tuple[str, str]] = []

    def fail(self, category, text):
        self.problems.append((category, text))

    def outcomes(self, out_d: Outcome, out_b: Outcome):
        if is_lazy_view_refusal(out_b.exc):
            return  # deliberate: see the module docstring
        if out_d.exc is not None and out_b.exc is not None:
            self.exceptions(out_d.exc, out_b.exc, "the call")
        elif out_d.exc is not None:
            self.fail("bind accepts what the direct call refuses",
                      f"direct raised {describe_exc(out_d.exc)}; bind returned {summary(out_b.value)}")
        elif out_b.exc is not None:
            msg = describe_exc(out_b.exc)
            category = "alignment pre-check" if "align" in msg else "argument refused"
            self.fail(category, f"direct returned {summary(out_d.value)}; bind raised {msg}")
        else:
            self.values(out_d.value, out_b.value, "result")
        # What the call did to its arguments (kernels write their outputs).
        for i, (a, b) in enumerate(zip(self.args_d, self.args_b)):
            if data_address(a) is not None or isinstance(a, (torch.Tensor, np.ndarray)):
                self.values(a, b, f"argument #{i} after the call", category="arguments differ after the call",
                            check_identity=False)

    def exceptions(self, e_d, e_b, where):
        if type(e_d) is type(e_b) and is_export_error_naming_the_argument(e_d, e_b):
            return  # deliberate: see the module docstring
        if type(e_d) is not type(e_b):
            self.fail("exception type differs", f"{where}: direct raised {describe_exc(e_d)}; "
                                                f"bind raised {describe_exc(e_b)}")
            return
        if normalise(str(e_d)) != normalise(str(e_b)):
            category = "alignment pre-check" if "align" in str(e_b) and "align" not in str(e_d) else \
                "error message differs"
            self.fail(category, f"{where}: {type(e_d).__qualname__} messages differ:\n  direct: "
                                f"{normalise(str(e_d))!r}\n  bind:   {normalise(str(e_b))!r}")
            return
        ffi_d, ffi_b = getattr(e_d, "__tvm_ffi_error__", None), getattr(e_b, "__tvm_ffi_error__", None)
        if ffi_d is not None:
            if ffi_b is None:
                self.fail("error message differs", f"{where}: the direct exception has __tvm_ffi_error__ "
                                                   f"(kind {ffi_d.kind!r}), bind's has none")
            elif (ffi_d.kind, normalise(ffi_d.message)) != (ffi_b.kind, normalise(ffi_b.message)):
                self.fail("error message differs",
                          f"{where}: __tvm_ffi_error__ differs: "
                          f"{ffi_d.kind}: {ffi_d.message!r} vs {ffi_b.kind}: {ffi_b.message!r}")

    def identity(self, a, b, path):
        ia = next((i for i, x in enumerate(self.args_d) if x is a), None)
        ib = next((i for i, x in enumerate(self.args_b) if x is b), None)
        if ia != ib:
            def said(i):
                return "a new object" if i is None else f"argument #{i} itself"
            self.fail("identity differs", f"{path}: direct returned {said(ia)}, bind returned {said(ib)}")
            return False
        return True

    def shared_data(self, a, b, path):
        pa, pb = data_address(a), data_address(b)
        sa = [i for i, x in enumerate(self.args_d) if pa is not None and data_address(x) == pa]
        sb = [i for i, x in enumerate(self.args_b) if pb is not None and data_address(x) == pb]
        if sa != sb:
            misaligned = [i for i in sa if data_address(self.args_d[i]) % 64]
            hint = f" (the data of argument(s) {misaligned} is not 64-byte aligned: a copy?)" if misaligned else ""
            self.fail("result differs", f"{path}: shares data with arguments {sa} directly, {sb} through bind{hint}")

    def values(self, a, b, path, category="result differs", check_identity=True):  # noqa: C901
        if check_identity and not self.identity(a, b, path):
            return
        if type(a) is not type(b):
            self.fail(category, f"{path}: type {type(a).__module__}.{type(a).__qualname__} directly, "
                                f"{type(b).__module__}.{type(b).__qualname__} through bind "
                                f"({summary(a)} vs {summary(b)})")
            return
        if isinstance(a, (torch.Tensor, np.ndarray, tvm_ffi.Tensor)):
            self.tensors(a, b, path, category)
            if check_identity:
                self.shared_data(a, b, path)
        elif isinstance(a, tvm_ffi.Shape) or isinstance(a, (str, bytes, int, type(None))):
            if a != b:
                self.fail(category, f"{path}: {a!r} directly, {b!r} through bind")
        elif isinstance(a, float):
            same = (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
            if not same:
                self.fail(category, f"{path}: {a!r} directly, {b!r} through bind")
        elif isinstance(a, (tvm_ffi.dtype, tvm_ffi.Device)):
            if str(a) != str(b):
                self.fail(category, f"{path}: {a!r} directly, {b!r} through bind")
        elif isinstance(a, ctypes._SimpleCData):
            if a.value != b.value:
                self.fail(category, f"{path}: {a!r} directly, {b!r} through bind")
        elif isinstance(a, (list, tuple, tvm_ffi.Array, tvm_ffi.List)):
            if len(a) != len(b):
                self.fail(category, f"{path}: length {len(a)} directly, {len(b)} through bind")
                return
            for i, (x, y) in enumerate(zip(a, b)):
                self.values(x, y, f"{path}[{i}]", category)
        elif isinstance(a, (dict, tvm_ffi.Map, tvm_ffi.Dict)):
            ka, kb = sorted(map(repr, a.keys())), sorted(map(repr, b.keys()))
            if ka != kb:
                self.fail(category, f"{path}: keys {ka} directly, {kb} through bind")
                return
            for k in a.keys():
                self.values(a[k], b[k], f"{path}[{k!r}]", category)
        elif isinstance(a, tvm_ffi.core.Error):
            if (a.kind, normalise(a.message)) != (b.kind, normalise(b.message)):
                self.fail(category, f"{path}: Error {a.kind}: {a.message!r} directly, {b.kind}: {b.message!r}")
        elif isinstance(a, tvm_ffi.Function) or callable(a):
            if self.probe is not None:
                pa, pb = run_call(a, self.probe), run_call(b, self.probe)
                if pa.exc is not None or pb.exc is not None:
                    if pa.exc is None or pb.exc is None:
                        self.fail(category, f"{path}{self.probe}: direct: {summary(pa)}; bind: {summary(pb)}")
                    else:
                        self.exceptions(pa.exc, pb.exc, f"{path}{self.probe}")
                else:
                    self.values(pa.value, pb.value, f"{path}{self.probe}", category)
        elif normalise(repr(a)) != normalise(repr(b)):
            self.fail(category, f"{path}: {normalise(repr(a))} directly, {normalise(repr(b))} through bind")

    def tensors(self, a, b, path, category):
        meta_a = (str(a.dtype), tuple(a.shape), getattr(a, "strides", None) if isinstance(a, np.ndarray)
                  else tuple(a.stride()) if isinstance(a, torch.Tensor) and a.layout == torch.strided
                  else tuple(a.strides) if isinstance(a, tvm_ffi.Tensor) else None, str(getattr(a, "device", "")))
        meta_b = (str(b.dtype), tuple(b.shape), getattr(b, "strides", None) if isinstance(b, np.ndarray)
                  else tuple(b.stride()) if isinstance(b, torch.Tensor) and b.layout == torch.strided
                  else tuple(b.strides) if isinstance(b, tvm_ffi.Tensor) else None, str(getattr(b, "device", "")))
        if meta_a != meta_b:
            self.fail(category, f"{path}: (dtype, shape, strides, device) {meta_a} directly, {meta_b} through bind")
            return
        va, vb = tensor_values(a), tensor_values(b)
        if va is None or vb is None or same_bits(va, vb):
            return
        try:
            torch.testing.assert_close(va, vb, rtol=0, atol=0, equal_nan=True)
            self.fail(category, f"{path}: values differ in their bits (e.g. NaN payloads or the sign of zero)")
        except AssertionError as e:
            self.fail(category, f"{path}: values differ: {str(e).splitlines()[0]}")

    def report(self):
        if self.problems:
            lines = [f"[{cat}] {text}" for cat, text in self.problems]
            raise AssertionError("\n".join(lines))


def summary(x) -> str:
    if isinstance(x, Outcome):
        return f"raised {describe_exc(x.exc)}" if x.exc is not None else f"returned {summary(x.value)}"
    if isinstance(x, (torch.Tensor, np.ndarray, tvm_ffi.Tensor)):
        return f"{type(x).__qualname__}(shape={tuple(x.shape)}, dtype={x.dtype})"
    return f"{type(x).__qualname__} {normalise(repr(x))[:80]}"


def compare_row(row: Row, direct, bound, seed: int, phase) -> None:
    args_d = tuple(row.make(torch.Generator().manual_seed(seed)))
    args_b = tuple(row.make(torch.Generator().manual_seed(seed)))
    phase("direct")
    out_d = run_call(direct, args_d)
    phase("bind")
    out_b = run_call(bound, args_b)
    phase("compare")
    cmp = Comparison(args_d, args_b, row.probe)
    cmp.outcomes(out_d, out_b)
    cmp.report()


# ---------------------------------------------------------------------------
# Tests.
# ---------------------------------------------------------------------------
@pytest.fixture
def seed():
    value = torch.seed() % (2**31)
    print(f"row seed {value}")
    return value


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bind_matches_direct(row, seed):
    direct, bound = callee(row.callee)  # built here, in the parent, before the fork
    run_forked(lambda phase: compare_row(row, direct, bound, seed, phase), ROW_TIMEOUT_S)


def test_table_ids_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


def test_many_argument_types_in_one_process(seed):
    """Dozens of distinct argument types through one bound function, in one process (any
    per-type cache fills up): every call still gives what tvm_ffi gives."""
    direct, bound = callee("ffi:testing.echo")
    echo_rows = [r for r in ROWS if r.callee == "ffi:testing.echo"]

    def body(phase):
        problems = []
        for row in echo_rows:
            try:
                compare_row(row, direct, bound, seed, phase)
            except AssertionError as e:
                problems.append(f"{row.id}: {e}")
        assert not problems, "\n".join(problems)

    run_forked(body, ROW_TIMEOUT_S)
