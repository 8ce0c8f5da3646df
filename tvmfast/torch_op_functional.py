"""Functional torch ops from out-variant functions: ``as_torch_op(..., outputs={position: spec})``.

The positions named in ``outputs`` leave the op's schema; each call allocates them as their spec says
(``tvmfast.alloc``), calls the function with them and returns them (in position order).  The op is a
plain functional op for torch: no ``auto_functionalized`` under ``torch.compile``, no copies.

Where native ops are on (see ``python -m tvmfast``) and every spec is declarative, the op's C kernel
allocates the outputs through torch's stable C ABI (``aoti_torch_empty_strided``, on the device of the
tensor ``like`` names, by torch's allocator: on CUDA, on the current stream) and makes the call without
Python.  A Python-callable spec, or a call the C kernel does not take, runs the Python kernel below,
which allocates with ``torch.empty``.  The fake implementation evaluates the same specs on fake tensors,
so dynamic shapes flow through them.

The op is the overload of the given name that its output specs identify (``torch.ops.ns.name.outputs_<digest>``;
call the op ``as_torch_op`` returns).  Code ``torch.compile`` makes for an op is keyed by its name and schema,
not by the outputs its fake implementation gives (inductor's FX graph cache, on disk too), so an op with other
outputs is another op: registering a name again with other specs defines another overload, and code compiled
for the first keeps calling the first.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import _C

from tvmfast import _core, alloc
from tvmfast.torch_op import _alias_set, _define, _install_kernels
from tvmfast.torch_op_kernels import _kernel_prologue, _kernel_scope, _refuse_differentiable

# Shape program codes (tvmfast/torch/native_op.pxi's ALLOC_*).
_CONST, _DIM, _DIMS = 0, 1, 2
_OP_CODES = {"add": 0, "sub": 1, "mul": 2, "floordiv": 3}


def make_functional_op(bound, name: str, kinds: list[str], mutated: tuple[int, ...], outputs, example_args):
    namespace, _, op_name = name.partition("::")
    specs = _checked_outputs(name, kinds, mutated, outputs, example_args)
    positions = sorted(specs)
    inputs = [i for i in range(len(kinds)) if i not in specs]
    stack_index = {pos: j for j, pos in enumerate(inputs)}
    alias = {pos: _alias_set(k) for k, pos in enumerate(mutated)}
    params = [f"Tensor({alias[i]}!) a{i}" if i in alias else f"{kinds[i]} a{i}" for i in inputs]
    ret = "Tensor" if len(positions) == 1 else "(" + ", ".join(["Tensor"] * len(positions)) + ")"
    schema = f"({', '.join(params)}) -> {ret}"
    qualname = f"{namespace}::{op_name}"
    # The op is the overload of `name` that these outputs identify: code torch.compile made for an op
    # keys on its name and schema, not on the outputs its fake implementation gives (inductor's FX graph
    # cache, also on disk across processes), so other outputs must be another op.
    overload = _overload_of(specs)
    reg = _define(qualname, namespace, op_name, schema, overload)
    op = getattr(getattr(getattr(torch.ops, namespace), op_name), overload)
    allocators = {pos: _allocator(qualname, pos, specs[pos], inputs) for pos in positions}
    kernel = _make_functional_kernel(qualname, bound, kinds, inputs, mutated, positions, allocators)
    input_kinds = [kinds[i] for i in inputs]
    program = _program(specs, positions)
    source = [stack_index[i] if i in stack_index else -1 - positions.index(i) for i in range(len(kinds))]
    # A Python-callable spec: the C kernel (where native ops are on) calls the Python kernel for
    # every call, so that a later registration of this op with declarative specs takes the C path.
    native = dict(kinds=input_kinds, mutated=[stack_index[i] for i in mutated], source=source,
                  n_allocated=len(positions) if program is not None else 0, alloc_program=program or [],
                  python_only=program is None)
    fake = _make_functional_fake(qualname, input_kinds, positions, allocators)
    _install_kernels(reg, op, bound, kernel, native, fake, input_kinds, tuple(stack_index[i] for i in mutated),
                     len(positions))
    return op


def _overload_of(specs: dict) -> str:
    """The overload name of an op with these outputs: a digest of each spec (a declarative spec's repr;
    a callable's name and code)."""
    parts = []
    for pos, spec in sorted(specs.items()):
        if isinstance(spec, alloc.like):
            parts.append(f"{pos}:{spec!r}")
        else:
            code = getattr(spec, "__code__", None)
            body = (code.co_code.hex(), repr(code.co_consts)) if code is not None else repr(spec)
            parts.append(f"{pos}:{getattr(spec, '__qualname__', type(spec).__qualname__)}:{body}")
    return "outputs_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _checked_outputs(name: str, kinds: list[str], mutated, outputs, example_args) -> dict:
    """{position: spec}, every spec checked against the arguments (and the example's shapes)."""
    where = f"tvmfast: as_torch_op({name!r}, outputs=...)"
    if not isinstance(outputs, dict) or not outputs:
        raise TypeError(f"{where}: takes a dict {{position: spec}} of the arguments the op allocates, e.g. "
                        f"outputs={{{len(kinds) - 1}: tvmfast.alloc.like(0)}}; got {outputs!r}")
    tensors = [i for i, k in enumerate(kinds) if k == "Tensor"]
    for pos, spec in outputs.items():
        if type(pos) is not int or not 0 <= pos < len(kinds) or kinds[pos] != "Tensor":
            raise ValueError(f"{where}: position {pos!r} is not a tensor argument (positions are ints; the "
                             f"arguments are: {', '.join(f'#{i} {k}' for i, k in enumerate(kinds))})")
        if pos in mutated:
            raise ValueError(f"{where}: argument #{pos} is an output the op allocates; it cannot also be in "
                             f"mutates_args")
        if callable(spec) and not isinstance(spec, alloc.like):
            continue
        if not isinstance(spec, alloc.like):
            raise TypeError(f"{where}: the spec of argument #{pos} must be tvmfast.alloc.like(...) or a "
                            f"callable of the op's arguments returning the tensor; got {spec!r}")
        for ref in sorted(spec.positions()):
            if ref not in tensors or ref in outputs:
                raise ValueError(f"{where}: the spec of argument #{pos} ({spec!r}) reads argument #{ref}, which "
                                 f"is not a tensor input of the op (the tensor inputs are "
                                 f"{', '.join(f'#{i}' for i in tensors if i not in outputs) or 'none'})")
        if spec.dtype is not None and not isinstance(spec.dtype, torch.dtype):
            raise TypeError(f"{where}: the spec of argument #{pos} has dtype={spec.dtype!r}; expected a "
                            f"torch.dtype")
        if example_args is not None:
            try:
                _evaluate_shape(spec, lambda k: example_args[k].shape)
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{where}: the spec of argument #{pos} ({spec!r}) does not apply to the "
                                 f"example arguments: {exc}") from None
    return dict(outputs)


def _evaluate_shape(spec: alloc.like, shape_of) -> tuple:
    """The output shape a declarative spec gives, with clear errors (IndexError, ValueError)."""
    def checked(k):
        return tuple(shape_of(k))
    for item in spec.shape or ():
        if isinstance(item, alloc.dim):
            shape = checked(item.arg)
            if not -len(shape) <= item.index < len(shape):
                raise IndexError(f"{item!r}: argument #{item.arg} has {len(shape)} dimensions "
                                 f"(shape {tuple(int(d) for d in shape)})")
    shape = spec.evaluate_shape(checked)
    for size in shape:
        if isinstance(size, int) and size < 0:
            raise ValueError(f"{spec!r} gives the shape {shape}: a size is negative")
    return shape


def _allocator(qualname: str, pos: int, spec, inputs: list[int]) -> Callable:
    """args (the op's, in order) -> the output tensor for argument #pos."""
    where = f"tvmfast: {qualname}: output argument #{pos}"
    if not isinstance(spec, alloc.like):
        def call_spec(args):
            out = spec(*args)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"{where}: its spec (a callable) gave {type(out).__qualname__}; expected a tensor")
            return out
        return call_spec
    index = {p: j for j, p in enumerate(inputs)}

    def allocate(args):
        like = args[index[spec.arg]]
        try:
            shape = _evaluate_shape(spec, lambda k: args[index[k]].shape)
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{where}: its spec does not apply to these inputs: {exc}") from None
        return torch.empty(shape, dtype=spec.dtype or like.dtype, device=like.device)
    return allocate


def _program(specs: dict, positions: list[int]) -> list[int] | None:
    """The C kernel's allocation program (tvmfast/torch/native_op.pxi), or None where a spec is a
    Python callable or a dtype has no code (the op keeps its Python kernel)."""
    program = []
    for pos in positions:
        spec = specs[pos]
        if not isinstance(spec, alloc.like):
            return None
        code = -1
        if spec.dtype is not None:
            code = _core._native_op_dtype_code(spec.dtype)
            if code is None:
                return None
        items = spec.shape if spec.shape is not None else (alloc.dims(spec.arg),)
        program += [pos, spec.arg, code, len(items)]
        for item in items:
            if type(item) is int:
                program += [_CONST, item]
            elif isinstance(item, alloc.dim):
                program += [_DIM, item.arg, item.index, len(item.ops)]
                for op, constant in item.ops:
                    program += [_OP_CODES[op], constant]
            else:
                program += [_DIMS, item.arg, item.start, item.stop or 0, item.stop is not None]
    return program


def _make_functional_kernel(qualname: str, bound, kinds: list[str], inputs: list[int], mutated: tuple[int, ...],
                            positions: list[int], allocators: dict) -> Callable:
    """The op's Python kernel, generated for its signature::

        def kernel(a0, a1):
            if is_grad_enabled() and (a0.requires_grad or a1.requires_grad):
                differentiable((a0, a1))
            if forward_ad._current_level >= 0:
                forward_dual((a0, a1))
            o2 = alloc2((a0, a1))
            out = call(a0, a1, o2)
            if out is not None:
                refuse_result(out)
            return o2
    """
    names = [f"a{i}" for i in inputs]
    packed = f"({', '.join(names)},)" if names else "()"
    lines = _kernel_prologue(names, [f"a{i}" for i in inputs if kinds[i] == "Tensor"], mutated)
    for pos in positions:
        lines.append(f"    o{pos} = alloc{pos}({packed})")
    call_args = ", ".join(f"o{i}" if i in allocators else f"a{i}" for i in range(len(kinds)))
    lines += [f"    out = call({call_args})",
              "    if out is not None:",
              "        refuse_result(out)",
              f"    return {', '.join(f'o{p}' for p in positions)}"]
    scope = _kernel_scope(qualname, bound, True)
    scope.update({f"alloc{pos}": allocators[pos] for pos in positions})
    exec(compile("\n".join(lines), f"<tvmfast op {qualname}>", "exec"), scope)
    return scope["kernel"]


def _make_functional_fake(qualname: str, input_kinds: list[str], positions: list[int], allocators: dict):
    tensors = [i for i, k in enumerate(input_kinds) if k == "Tensor"]

    def fake(*args):
        if _C.is_grad_enabled() and any(args[i].requires_grad for i in tensors):
            _refuse_differentiable(qualname, args, True)
        outs = tuple(allocators[pos](args) for pos in positions)
        return outs[0] if len(outs) == 1 else outs

    return fake
