"""The argument kinds of the speed matrix, as cells: one argument kind passed to one function
(``testing.echo``, ``testing.nop``, ``testing.apply``, ``testing.test_raise_error`` or a TVM add
kernel), with fresh random inputs from each ``make_args()``, and the check that tvmfast's outcome is
tvm_ffi's (the same result, element by element and by aliasing, or the same error, and the same effect
on the arguments).  Shared by tests/test_argument_kinds.py, which checks every cell, and
``bench.matrix``, which times them."""
from __future__ import annotations

import ctypes
import functools
import random
import string
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import tvm_ffi

import tvmfast
from support import tvm_kernels as kernels

N = 16  # elements per tensor: tiny, so the call's conversions dominate
REF, DYNAMIC, PREPARED = "tvm_ffi", "tvmfast dynamic", "tvmfast prepared"
GROUPS = ("tensors", "scalars, strings and bytes", "Python containers", "tvm_ffi objects and other handles",
          "errors")


# ---------------------------------------------------------------------------------------------
# The cells
# ---------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One argument kind: ``fn(*make_args())`` (``fn`` a tvm_ffi.Function), in ``group``; ``error``:
    the call raises (tvm_ffi's and tvmfast's errors must then agree)."""
    name: str
    group: str
    get_fn: Callable[[], object] = field(repr=False)
    make_args: Callable[[], tuple] = field(repr=False)
    error: bool = False
    kernel: bool = False  # the function is a TVM kernel (apache-tvm builds it, or --kernel-dir has it)

    @functools.cached_property
    def fn(self):
        return self.get_fn()


class Kernels:
    """The TVM kernels of the tensor and error cells, built (or loaded) on first use, once.

    CPU: ``build_add(16)`` (3 tensors), or with a kernel folder (TVM's runtime only) the prebuilt
    ``sum5_f32_cpu`` (5 tensors of 16: the last gets the sum of the others). CUDA: ``add_f32_1024``."""

    def __init__(self, kernel_dir: str | None = None):
        self.kernel_dir = kernels.kernel_dir(kernel_dir)
        self.cpu_arity = 3 if self.kernel_dir is None else 5
        self.cpu_name = "TVM add kernel" if self.kernel_dir is None else "TVM sum5 kernel"

    @functools.cached_property
    def cpu(self):
        if self.kernel_dir is None:
            return kernels.build_add(N)["main"]
        return kernels.named_kernel("sum5_f32_cpu", self.kernel_dir)["main"]

    @functools.cached_property
    def cuda(self):
        return kernels.named_kernel("add_f32_1024", self.kernel_dir)["main"]


class DLPackProducer:
    """A DLPack producer that is neither torch nor numpy: ``__dlpack__`` and ``__dlpack_device__``
    of the array it wraps (``.array``)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


class TensorsAndInts(typing.NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    n: int
    m: int


def aligned_floats(n: int, alignment: int, offset: int = 0) -> np.ndarray:
    """``n`` random float32 whose data is at ``offset`` bytes past a multiple of ``alignment``."""
    buf = np.empty(n * 4 + alignment + offset, dtype=np.uint8)
    start = (-buf.ctypes.data) % alignment + offset
    a = buf[start:start + n * 4].view(np.float32)
    a[...] = np.random.standard_normal(n)
    assert a.ctypes.data % alignment == offset
    return a


def random_text(k: int, alphabet: str = string.ascii_letters) -> str:
    return "".join(random.choices(alphabet, k=k))


def callback_that_raises(x):
    raise ValueError(f"the Python callback refuses {x!r}")


def cells(torch_cuda: bool = False, kernel_dir: str | None = None) -> list[Cell]:
    """Every cell of the matrix, fresh inputs from each ``make_args()``. ``torch_cuda``: with the
    CUDA tensor cells; ``kernel_dir``: prebuilt kernels (else apache-tvm builds them, on first use)."""
    echo = tvm_ffi.get_global_func("testing.echo")
    nop = tvm_ffi.get_global_func("testing.nop")
    apply = tvm_ffi.get_global_func("testing.apply")
    raise_error = tvm_ffi.get_global_func("testing.test_raise_error")
    k = Kernels(kernel_dir)
    out = []

    def add(name, group, fn, make_args, error=False):
        """``fn``: a tvm_ffi.Function, or "cpu" / "cuda" for the kernel of :class:`Kernels`."""
        kernel = isinstance(fn, str)
        get_fn = (lambda: getattr(k, fn)) if kernel else (lambda: fn)
        out.append(Cell(name, group, get_fn, make_args, error, kernel))

    def floats(n=N, device="cpu", dtype=torch.float32):
        return torch.randn(n, device=device, dtype=dtype)

    a = k.cpu_arity
    t, s, c, o, e = GROUPS
    add("torch CPU tensor -> echo", t, echo, lambda: (floats(),))
    add("3 torch CPU tensors -> nop", t, nop, lambda: (floats(), floats(), floats()))
    add(f"{a} torch CPU tensors -> {k.cpu_name}", t, "cpu", lambda: tuple(floats() for _ in range(a)))
    if torch_cuda:
        add("torch CUDA tensor -> echo", t, echo, lambda: (floats(device="cuda"),))
        add("3 torch CUDA tensors (1024) -> TVM CUDA add kernel", t, "cuda",
            lambda: tuple(floats(1024, "cuda") for _ in range(3)))
    add("numpy float32, 64-byte aligned -> echo", t, echo, lambda: (aligned_floats(N, 64),))
    add("numpy float32, 16-byte aligned, not 64 -> echo", t, echo, lambda: (aligned_floats(N, 64, 16),))
    add("numpy float32, strided a[::2] -> echo", t, echo, lambda: (aligned_floats(2 * N, 64)[::2],))
    add("numpy float32, 0-d -> echo", t, echo, lambda: (np.array(random.random(), dtype=np.float32),))
    add(f"{a} numpy float32 (64-byte aligned) -> {k.cpu_name}", t, "cpu",
        lambda: tuple(aligned_floats(N, 64) for _ in range(a)))
    add("tvm_ffi.Tensor (from_dlpack of torch) -> echo", t, echo, lambda: (tvm_ffi.from_dlpack(floats()),))
    add("other DLPack producer (numpy inside) -> echo", t, echo,
        lambda: (DLPackProducer(aligned_floats(N, 64)),))
    add("other DLPack producer (torch inside) -> echo", t, echo, lambda: (DLPackProducer(floats()),))

    add("int -> echo", s, echo, lambda: (random.randrange(-2**31, 2**31),))
    add("float -> echo", s, echo, lambda: (random.uniform(-1e3, 1e3),))
    add("bool -> echo", s, echo, lambda: (random.random() < 0.5,))
    add("int 2**70 -> echo", s, echo, lambda: (2**70 + random.randrange(1000),))
    add("str, 5 chars -> echo", s, echo, lambda: (random_text(5),))
    add("str, 200 chars -> echo", s, echo, lambda: (random_text(200),))
    add("str, non-ASCII -> echo", s, echo, lambda: ("héllo wörld ✓ " + random_text(3, "äöüé✓ж"),))
    add("bytes -> echo", s, echo, lambda: (random.randbytes(3),))
    add("None -> echo", s, echo, lambda: (None,))

    def ints(k):
        return random.sample(range(100), k)  # distinct: a reversed or reordered result never equals the argument

    def nested():
        v = ints(5)
        return ((v[0], v[1]), (v[2], (v[3], v[4]))),

    add("tuple of 2 torch tensors -> echo", c, echo, lambda: ((floats(), floats()),))
    add("list of 4 ints -> echo", c, echo, lambda: (ints(4),))
    add("tuple of 2 ints -> echo", c, echo, lambda: (tuple(ints(2)),))
    add("NamedTuple of 2 tensors + 2 ints -> echo", c, echo, lambda: (TensorsAndInts(floats(), floats(), *ints(2)),))
    add("nested tuple ((1, 2), (3, (4, 5))) -> echo", c, echo, nested)
    add("dict of 2 str -> int -> echo", c, echo, lambda: (dict(zip(("a", "b"), ints(2))),))

    add("tvm_ffi.Array (convert of a list) -> echo", o, echo, lambda: (tvm_ffi.convert(ints(3)),))
    add("tvm_ffi.Map (convert of a dict) -> echo", o, echo, lambda: (tvm_ffi.convert({"a": ints(1)[0]}),))
    add("tvm_ffi.Shape -> echo", o, echo, lambda: (tvm_ffi.Shape(tuple(x + 1 for x in ints(2))),))
    add("tvm_ffi.dtype -> echo", o, echo,
        lambda: (tvm_ffi.dtype(random.choice(("float32", "int8", "bfloat16"))),))
    add("tvm_ffi.Device -> echo", o, echo, lambda: (tvm_ffi.device("cpu", 0),))
    add("torch.float32 (a torch dtype) -> echo", o, echo, lambda: (torch.float32,))
    add("Python callable, tvm_ffi.convert(lambda) -> echo", o, echo, lambda: (tvm_ffi.convert(lambda x: x),))
    add("FFI object (a global tvm_ffi.Function) -> echo", o, echo, lambda: (nop,))
    add("opaque pointer ctypes.c_void_p -> echo", o, echo, lambda: (ctypes.c_void_p(random.randrange(1, 2**20)),))

    cb = tvm_ffi.convert(callback_that_raises)
    add(f"float64 tensors -> {k.cpu_name} (dtype check raises)", e, "cpu",
        lambda: tuple(floats(dtype=torch.float64) for _ in range(a)), error=True)
    add("C++ function raises (testing.test_raise_error)", e, raise_error,
        lambda: ("ValueError", f"raised in C++ {random.randrange(1000)}"),
        error=True)
    add("Python callback raises, called from C++ (testing.apply)", e, apply,
        lambda: (cb, random.randrange(1000)), error=True)
    add(f"wrong argument count: {a - 1} tensors -> {k.cpu_name}", e, "cpu",
        lambda: tuple(floats() for _ in range(a - 1)), error=True)
    return out


# ---------------------------------------------------------------------------------------------
# Same outcome: result (or error) and the arguments after the call
# ---------------------------------------------------------------------------------------------
def buffers(x) -> list:
    """The writable arrays an argument tree holds (torch tensors, numpy arrays, tvm_ffi.Tensors
    as torch views)."""
    if isinstance(x, torch.Tensor | np.ndarray):
        return [x]
    if isinstance(x, tvm_ffi.Tensor):
        return [torch.from_dlpack(x)]
    if isinstance(x, DLPackProducer):
        return buffers(x.array)
    if isinstance(x, tuple | list):
        return [b for v in x for b in buffers(v)]
    if isinstance(x, dict):
        return [b for v in x.values() for b in buffers(v)]
    return []


def identities(x) -> list:
    """Data pointers and object handles in an argument tree, in order: a result that is an
    argument's memory or object is recorded as that argument's index."""
    if isinstance(x, torch.Tensor):
        return [x.data_ptr()]
    if isinstance(x, np.ndarray):
        return [x.ctypes.data]
    if isinstance(x, tvm_ffi.Tensor):
        return [_ffi_data_ptr(x), x.__chandle__()]
    if isinstance(x, DLPackProducer):
        return identities(x.array)
    if isinstance(x, tvm_ffi.core.CObject):
        return [x.__chandle__()]
    if isinstance(x, tuple | list):
        return [i for v in x for i in identities(v)]
    if isinstance(x, dict):
        return [i for v in x.values() for i in identities(v)]
    return []


def _ffi_data_ptr(x) -> int:
    """A tvm_ffi.Tensor's data address (older tvm_ffi has no data_ptr(): through DLPack)."""
    return x.data_ptr() if hasattr(x, "data_ptr") else torch.from_dlpack(x).data_ptr()


def _alias(key, ids):
    return ("argument", ids.index(key)) if key in ids else "new"


def _tensor_value(t: torch.Tensor):
    t = t.detach()
    raw = t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()  # any dtype, bit for bit
    return str(t.dtype), tuple(t.shape), tuple(t.stride()), str(t.device), raw


def canonical(x, ids: list):
    """What a result is, as a value comparable with ==: its type, its value (element by element),
    and which argument's memory or object it is."""
    kind = type(x)
    if isinstance(x, torch.Tensor):
        return kind, _tensor_value(x), _alias(x.data_ptr(), ids)
    if isinstance(x, tvm_ffi.Tensor):
        return kind, _tensor_value(torch.from_dlpack(x)), _alias(_ffi_data_ptr(x), ids)
    if isinstance(x, np.ndarray):
        return kind, _tensor_value(torch.from_numpy(x)), _alias(x.ctypes.data, ids)
    if isinstance(x, tvm_ffi.Array | tuple | list):
        ident = _alias(x.__chandle__(), ids) if isinstance(x, tvm_ffi.core.CObject) else None
        return kind, tuple(canonical(v, ids) for v in x), ident
    if isinstance(x, tvm_ffi.Map | dict):
        ident = _alias(x.__chandle__(), ids) if isinstance(x, tvm_ffi.core.CObject) else None
        return kind, tuple((canonical(k, ids), canonical(v, ids)) for k, v in x.items()), ident
    if isinstance(x, tvm_ffi.core.CObject):
        return kind, _alias(x.__chandle__(), ids)
    if isinstance(x, tvm_ffi.Device):
        return kind, str(x)
    if isinstance(x, ctypes.c_void_p):
        return kind, x.value
    if isinstance(x, float):
        return kind, x.hex()
    if x is None or isinstance(x, int | str | bytes):
        return kind, x
    return kind, repr(x)


@dataclass
class Outcome:
    result: object = None
    error: BaseException | None = None
    state: tuple = ()  # the arguments' arrays after the call
    canon: object = None

    def describe(self) -> str:
        if self.error is not None:
            return f"raises {type(self.error).__name__}: {str(self.error)[:200]!r}"
        return f"returns {type(self.result).__module__}.{type(self.result).__qualname__}: {self.result!r:.200}"


def run_call(call: Callable, args: tuple, bufs: list, ids: list) -> Outcome:
    out = Outcome()
    try:
        out.result = call(*args)
    except Exception as e:  # noqa: BLE001  (the outcome compared is any error)
        out.error = e
    if out.error is not None:
        out.canon = ("raises", type(out.error), str(out.error))
    else:
        try:
            out.canon = ("returns", canonical(out.result, ids))
        except Exception as e:  # noqa: BLE001  (a result that cannot be read is an outcome too)
            out.canon = ("unreadable result", type(out.result), f"{type(e).__name__}: {e}")
    out.state = tuple(_tensor_value(torch.from_numpy(b) if isinstance(b, np.ndarray) else b) for b in bufs)
    return out


def _restore(bufs: list, saved: list) -> None:
    for b, s in zip(bufs, saved):
        if isinstance(b, np.ndarray):
            b[...] = s
        else:
            b.copy_(s)


@dataclass
class Check:
    """tvm_ffi's outcome and tvmfast's on the same arguments (the arguments restored between)."""
    ref: Outcome
    dynamic: Outcome
    prepared: Outcome | None  # None: prepare refused the arguments (``prepare_error``)
    prepare_error: BaseException | None = None

    @property
    def same_dynamic(self) -> bool:
        return self.dynamic.canon == self.ref.canon and self.dynamic.state == self.ref.state

    @property
    def same_prepared(self) -> bool:
        return self.prepared is None or (self.prepared.canon == self.ref.canon
                                         and self.prepared.state == self.ref.state)

    @property
    def same(self) -> bool:
        return self.same_dynamic and self.same_prepared

    def differences(self) -> str:
        lines = []
        for name, got, same in ((DYNAMIC, self.dynamic, self.same_dynamic),
                                (PREPARED, self.prepared, self.same_prepared)):
            if not same:
                what = "arguments after the call differ" if got.canon == self.ref.canon else got.describe()
                lines.append(f"{name}: {what}")
        return f"tvm_ffi: {self.ref.describe()}; " + "; ".join(lines)


def check(cell: Cell, f=None, args: tuple | None = None) -> Check:
    """Call ``cell.fn`` (tvm_ffi), ``f`` (default: ``tvmfast.bind(cell.fn)``) and ``f.prepare(*args)()``
    on the same fresh arguments, each from the same starting state."""
    f = tvmfast.bind(cell.fn) if f is None else f
    args = cell.make_args() if args is None else args
    bufs = buffers(args)
    ids = identities(args)
    saved = [b.copy() if isinstance(b, np.ndarray) else b.clone() for b in bufs]
    ref = run_call(cell.fn, args, bufs, ids)
    _restore(bufs, saved)
    dynamic = run_call(f, args, bufs, ids)
    _restore(bufs, saved)
    try:
        p = f.prepare(*args)
    except Exception as e:  # noqa: BLE001
        return Check(ref, dynamic, None, e)
    prepared = run_call(p, (), bufs, ids)
    _restore(bufs, saved)
    return Check(ref, dynamic, prepared)


def returns(c: Check) -> str:
    """What tvm_ffi's call gives, in a few words (the table's *returns* column)."""
    if c.ref.error is not None:
        return f"raises {type(c.ref.error).__name__}"
    kind = type(c.ref.result)
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
