"""Output specs of a functional torch op (``as_torch_op(..., outputs={position: spec})``).

An out-variant function writes into tensors its caller allocates.  ``as_torch_op`` can make it a
functional op: the positions named in ``outputs`` leave the op's schema, and each call allocates them
(as its spec says) and returns them.  Declarative specs are evaluated in C at each call, without
Python; they are also the op's fake implementation, so shapes stay symbolic under ``torch.compile``::

    from tvmfast import alloc

    # silu_and_mul(x, out): out is x.shape[:-1] + (x.shape[-1] // 2,), x's dtype and device
    op = f.as_torch_op("mylib::silu_and_mul", example_args=(x, out),
                       outputs={1: alloc.like(0, shape=[alloc.dims(0, stop=-1), alloc.dim(0, -1) // 2])})
    y = op(x)

    # rmsnorm(x, w, out, rstd): out like x; rstd of x.shape[:-1] in float32
    op = g.as_torch_op("mylib::rmsnorm", example_args=(x, w, out, rstd),
                       outputs={2: alloc.like(0), 3: alloc.like(0, dtype=torch.float32,
                                                                 shape=[alloc.dims(0, stop=-1)])})
    y, rstd = op(x, w)

Positions (``like(k)``, ``dim(k, d)``, ``dims(k, ...)``) are the function's argument positions of
tensor inputs.  Outputs are contiguous, on the device of the tensor ``like`` names.  A spec may also be
a Python callable of the op's inputs returning the allocated tensor; such an op runs a Python kernel
(about torch.library.custom_op's cost, see docs/torch.md).
"""
from __future__ import annotations

import operator

__all__ = ["dim", "dims", "like"]

# Arithmetic a dimension expression may apply, in order, each with an int constant.
_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv}


class dim:  # noqa: N801  (reads as a function in a spec)
    """Dimension ``d`` of tensor argument ``k`` (negative ``d`` counts from the end), then any of
    ``+ c``, ``- c``, ``* c``, ``// c`` with int constants, applied left to right."""

    __slots__ = ("arg", "index", "ops")

    def __init__(self, arg: int, index: int, ops: tuple = ()):
        for name, value in (("argument position", arg), ("dimension", index)):
            if type(value) is not int:
                raise TypeError(f"tvmfast.alloc.dim: the {name} must be an int, got {value!r}")
        self.arg, self.index, self.ops = arg, index, tuple(ops)

    def _with(self, op: str, value) -> dim:
        if type(value) is not int:
            raise TypeError(f"tvmfast.alloc.dim: {op} takes an int constant, got {value!r}")
        if op == "floordiv" and value <= 0:
            raise ValueError(f"tvmfast.alloc.dim: // takes a positive int, got {value}")
        return dim(self.arg, self.index, self.ops + ((op, value),))

    def __add__(self, value): return self._with("add", value)
    def __sub__(self, value): return self._with("sub", value)
    def __mul__(self, value): return self._with("mul", value)
    def __floordiv__(self, value): return self._with("floordiv", value)

    def evaluate(self, shape_of):
        shape = shape_of(self.arg)
        value = shape[self.index]
        for op, c in self.ops:
            value = _OPS[op](value, c)
        return value

    def __repr__(self):
        text = f"dim({self.arg}, {self.index})"
        for op, c in self.ops:
            text = f"({text} {dict(add='+', sub='-', mul='*', floordiv='//')[op]} {c})"
        return text


class dims:  # noqa: N801
    """Dimensions ``start:stop`` of tensor argument ``k`` (Python slice rules, negative counts from the
    end; ``stop=None``: to the end)."""

    __slots__ = ("arg", "start", "stop")

    def __init__(self, arg: int, start: int = 0, stop: int | None = None):
        for name, value in (("argument position", arg), ("start", start)):
            if type(value) is not int:
                raise TypeError(f"tvmfast.alloc.dims: the {name} must be an int, got {value!r}")
        if stop is not None and type(stop) is not int:
            raise TypeError(f"tvmfast.alloc.dims: stop must be an int or None, got {stop!r}")
        self.arg, self.start, self.stop = arg, start, stop

    def evaluate(self, shape_of):
        return tuple(shape_of(self.arg))[self.start:self.stop]

    def __repr__(self):
        return f"dims({self.arg}, {self.start}, {self.stop})"


class like:  # noqa: N801
    """An output like tensor argument ``k``: its device; its dtype unless ``dtype`` (a torch.dtype) is
    given; its shape unless ``shape`` is given: a sequence of ints, ``dim(...)`` and ``dims(...)``."""

    __slots__ = ("arg", "dtype", "shape")

    def __init__(self, arg: int, *, dtype=None, shape=None):
        if type(arg) is not int:
            raise TypeError(f"tvmfast.alloc.like: the argument position must be an int, got {arg!r}")
        if shape is not None:
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
                raise TypeError(f"tvmfast.alloc.like: shape must be a sequence of ints, dim(...) and dims(...), "
                                f"got {shape!r}")
            shape = tuple(shape)
            for item in shape:
                if type(item) is not int and not isinstance(item, (dim, dims)):
                    raise TypeError(f"tvmfast.alloc.like: a shape item must be an int, dim(...) or dims(...), "
                                    f"got {item!r}")
                if type(item) is int and item < 0:
                    raise ValueError(f"tvmfast.alloc.like: a constant dimension must be >= 0, got {item}")
        self.arg, self.dtype, self.shape = arg, dtype, shape

    def positions(self) -> set:
        """The argument positions the spec reads."""
        found = {self.arg}
        for item in self.shape or ():
            if not isinstance(item, int):
                found.add(item.arg)
        return found

    def evaluate_shape(self, shape_of) -> tuple:
        if self.shape is None:
            return tuple(shape_of(self.arg))
        out = []
        for item in self.shape:
            if type(item) is int:
                out.append(item)
            elif isinstance(item, dims):
                out.extend(item.evaluate(shape_of))
            else:
                out.append(item.evaluate(shape_of))
        return tuple(out)

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in (("dtype", self.dtype), ("shape", self.shape)) if v is not None)
        return f"like({self.arg}{extra})"
