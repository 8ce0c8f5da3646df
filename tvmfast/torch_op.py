"""Register a bound TVM function as a torch custom op: eager, autograd checks, torch.compile, export, AOTInductor.

``make_torch_op(f, "ns::name", mutates_args=(2,))`` (``f.as_torch_op``) defines ``ns::name`` with an explicit
schema in a ``torch.library.Library`` and returns ``torch.ops.ns.name.default``.  Per op:

* the definition (schema and tags) is made once per process and kept; the kernels live in a second
  ``Library`` that a later registration of the same name and schema destroys and registers again (a
  rebuilt kernel replaces the old one; graphs compiled against the op keep calling it);
* the kernel (``CompositeExplicitAutograd``, the one eager calls reach) is a small function generated for
  the op's signature: it refuses differentiable use (no autograd formula would compute the op's share of a
  gradient), refuses writing an inference tensor outside inference mode, bumps the version counters of the
  tensors it writes (as torch's in-place ops do, so autograd notices a saved tensor being overwritten), then
  calls the bound function; a returning op hands TVM's result over as torch tensors;
* the fake implementation (tracing, ``torch.compile``, export) returns nothing for an out-variant op, or the
  tensors the output spec describes; it refuses differentiable use too, so compiling such a use fails while
  tracing instead of training silently wrong;
* a vmap rule runs the op once per batch element (writing into the batched outputs in place).

The differentiable-use check sits below autograd: torch's autograd fallback passes grad mode and
``requires_grad`` through unchanged, and a backward registered with ``torch.library.register_autograd`` runs
the op with grad mode off, so the check only fires where a gradient would otherwise be dropped.  functorch's
transforms (``torch.func.grad``, ``jvp``) hand the kernel unwrapped tensors: there the same check runs one key
higher, at the back of the transform's layer (a key plain eager calls never reach).
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import torch
from torch import _C

from tvmfast import _core
from tvmfast.torch_op_kernels import (
    _FUNCTORCH_BACK,
    _make_fake,
    _make_functorch_check,
    _make_kernel,
    _make_vmap_rule,
    _outputs_of,
)

# Schema type per Python scalar type.  Ints are SymInt, so that torch.compile keeps an int argument
# symbolic (one graph across values) instead of specializing the graph on each value.
_SCALAR_SCHEMA = {bool: "bool", int: "SymInt", float: "float"}
# pt2_compliant: the op passes torch.library.opcheck.  needs_exact_strides: inductor passes tensors with
# the strides they have in eager mode (TVM kernels check layouts).
_TAGS = tuple(getattr(torch.Tag, t) for t in ("pt2_compliant_tag", "needs_exact_strides") if hasattr(torch.Tag, t))


class _Registration:
    """What tvmfast registered under one op name: the definition (kept for the process) and the
    kernels (replaced by a later registration with the same schema)."""

    __slots__ = ("bound", "definition", "kernels", "qualname", "schema")

    def __init__(self, qualname: str, schema: str, definition: torch.library.Library):
        self.qualname = qualname
        self.schema = schema
        self.definition = definition
        self.kernels: torch.library.Library | None = None
        self.bound = None


# qualname -> registration.  torch deregisters an op when its Library is collected: these keep them.
_REGISTRY: dict[str, _Registration] = {}


def _op_overload_call(self, /, *args, **kwargs):
    return self._op(*args, **kwargs)  # what torch's OpOverload.__call__ must be, code for code


class OpOverloadCalledInC(torch._ops.OpOverload):
    """torch's OpOverload of an op tvmfast defined, whose call runs ``self._op(*args, **kwargs)`` in C
    (OpOverload.__call__'s one line, without its Python frame). The same layout as OpOverload (no
    slots, no fields), so that an op's class can be switched to it."""

    __slots__ = ()


def _op_overload_class_called_in_c() -> type | None:
    """OpOverloadCalledInC, its call set in C: an eager call of a tvmfast op skips OpOverload.__call__'s
    Python frame (bench/RESULTS.md gives the op's cost). None where this torch's OpOverload.__call__ does
    anything else: then tvmfast's ops stay plain OpOverloads."""
    global _OP_CLASS
    if _OP_CLASS is False:
        call = getattr(torch._ops.OpOverload.__call__, "__code__", None)
        ref = _op_overload_call.__code__
        same = call is not None and all(getattr(call, a) == getattr(ref, a) for a in (
            "co_code", "co_names", "co_consts", "co_argcount", "co_posonlyargcount", "co_kwonlyargcount",
            "co_varnames")) and call.co_flags & 0xFFFF == ref.co_flags & 0xFFFF  # not the __future__ flags
        if same:
            _core._set_op_overload_call(OpOverloadCalledInC)
        _OP_CLASS = OpOverloadCalledInC if same else None
    return _OP_CLASS


_OP_CLASS: type | None | bool = False  # not decided yet


def _call_in_c(op) -> None:
    """Give a tvmfast op (torch's own OpOverload object, the one torch.ops hands out) the class
    whose calls run in C; everything else about it (identity, isinstance, repr, compile) is kept."""
    cls = _op_overload_class_called_in_c()
    if cls is not None and type(op) is torch._ops.OpOverload:
        op.__class__ = cls


def make_torch_op(bound, name: str, mutates_args: Sequence[int] = (), example_args: Sequence[Any] | None = None,
                  *, returns=None, outputs=None):
    """Register ``bound`` as the torch op ``name`` (``"namespace::op"``) and return its ``OpOverload``.

    ``mutates_args``: positions of the tensors the function writes.  ``example_args``: one call's arguments
    (tensors, ints, floats, bools); they give the schema.  Without them every argument is a tensor and their
    number is ``bind(num_args=)`` or the one learned from a first call.  ``returns``: for a function that
    allocates and returns its result (a Relax VM function), the output spec, which is also the op's fake
    implementation: a callable of the op's arguments giving the output (a tensor such as
    ``x.new_empty(n, m)``, or a ``(shape, dtype)`` pair on the first tensor argument's device), or a
    sequence of such callables, one per returned tensor.  Registering a name again with the same schema
    replaces the kernel; another schema raises ``ValueError``.

    ``outputs``: a functional op from an out-variant function, ``{position: spec}``: those arguments leave
    the op's schema, and each call allocates them (``tvmfast.alloc.like(...)``, evaluated in C; or a
    Python callable of the op's arguments returning the tensor) and returns them, in position order.
    """
    namespace, sep, op_name = name.partition("::") if isinstance(name, str) else ("", "", "")
    if not sep or not namespace.isidentifier() or not op_name.isidentifier():
        raise ValueError(f"tvmfast: custom op name must look like 'namespace::name', got {name!r}")
    kinds = _argument_kinds(bound, name, example_args)
    mutated = _mutated_positions(mutates_args, kinds)
    specs = _output_specs(returns)
    if outputs is not None:
        if specs:
            raise ValueError(f"tvmfast: as_torch_op({name!r}): returns= is for a function that returns its "
                             f"result, outputs= for one that writes into outputs it is given: pass one of them")
        from tvmfast.torch_op_functional import make_functional_op  # noqa: PLC0415
        return make_functional_op(bound, name, kinds, mutated, outputs, example_args)
    if not mutated and not specs:
        # torch sees an op's effect only through what its schema says it writes or returns:
        # torch.compile would drop a call of an op that declares neither.
        raise ValueError(
            f"tvmfast: as_torch_op({name!r}) declares no effect: pass mutates_args=(positions of the tensors "
            f"the function writes), e.g. mutates_args=({len(kinds) - 1},) for an output passed last, or "
            f"returns=... (the output spec) for a function that returns its result; torch.compile drops a "
            f"call of an op that declares neither")
    alias = {pos: _alias_set(k) for k, pos in enumerate(mutated)}
    params = [f"Tensor({alias[i]}!) a{i}" if i in alias else f"{kind} a{i}" for i, kind in enumerate(kinds)]
    if not specs:
        ret = "()"
    elif len(specs) == 1:
        ret = "Tensor"
    else:
        ret = "(" + ", ".join(["Tensor"] * len(specs)) + ")"
    schema = f"({', '.join(params)}) -> {ret}"
    qualname = f"{namespace}::{op_name}"
    reg = _define(qualname, namespace, op_name, schema)
    op = getattr(getattr(torch.ops, namespace), op_name).default
    _register_kernels(reg, op, bound, kinds, mutated, specs)
    return op


# ---------------------------------------------------------------------------
# Arguments, schema, definition
# ---------------------------------------------------------------------------
def _argument_kinds(bound, name: str, example_args) -> list[str]:
    if example_args is not None:
        kinds = []
        for i, a in enumerate(example_args):
            if isinstance(a, torch.Tensor):
                kinds.append("Tensor")
            elif type(a) in _SCALAR_SCHEMA:
                kinds.append(_SCALAR_SCHEMA[type(a)])
            else:
                raise TypeError(f"tvmfast: as_torch_op example argument #{i}: expected a torch.Tensor, "
                                f"int, float or bool, got {type(a).__qualname__}")
        if bound.num_args is not None and len(kinds) != bound.num_args:
            raise ValueError(f"tvmfast: as_torch_op({name!r}): {len(kinds)} example arguments, but the function "
                             f"was bound with num_args={bound.num_args}")
        return kinds
    n = known_num_args(bound)
    if n < 0:
        raise ValueError(
            f"tvmfast: as_torch_op({name!r}) needs bind(..., num_args=N), example_args=[...] (one call's "
            f"arguments, which also declare int, float and bool arguments) or one call of the function first, "
            f"to know its arguments")
    return ["Tensor"] * n


def known_num_args(bound) -> int:
    """The argument count of ``bound`` (bind's num_args, a Relax VM function's arity, or the count of its
    last successful call), -1 if unknown."""
    return -1 if bound.num_args is None else bound.num_args


def _alias_set(k: int) -> str:
    """The schema's alias set of the k-th written tensor: a, b, ... z, then w26, w27, ..."""
    return string.ascii_lowercase[k] if k < len(string.ascii_lowercase) else f"w{k}"


def _mutated_positions(mutates_args, kinds: list[str]) -> tuple[int, ...]:
    if isinstance(mutates_args, (int, str)) or not isinstance(mutates_args, Sequence):
        raise TypeError(f"tvmfast: mutates_args must be a sequence of argument positions, got {mutates_args!r}")
    for pos in mutates_args:
        if type(pos) is not int or not 0 <= pos < len(kinds) or kinds[pos] != "Tensor":
            raise ValueError(f"tvmfast: mutates_args position {pos!r} is not a tensor argument: positions are "
                             f"ints (argument indexes), e.g. mutates_args=({len(kinds) - 1},); the arguments are: "
                             f"{', '.join(f'#{i} {k}' for i, k in enumerate(kinds)) or 'none'}")
    if len(set(mutates_args)) != len(mutates_args):
        raise ValueError(f"tvmfast: mutates_args names a position twice: {tuple(mutates_args)}")
    return tuple(sorted(mutates_args))


def _output_specs(returns) -> tuple:
    if returns is None:
        return ()
    specs = (returns,) if callable(returns) else returns
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence) or not specs or not all(
            callable(s) for s in specs):
        raise TypeError("tvmfast: returns= takes a callable of the op's arguments giving the output (a tensor "
                        "such as x.new_empty(n, m), or a (shape, dtype) pair), or a sequence of them, one per "
                        f"returned tensor; got {returns!r}")
    return tuple(specs)


def _define(qualname: str, namespace: str, op_name: str, schema: str, overload: str = "") -> _Registration:
    """The registration of ``qualname`` (``ns::name``; with ``overload``, that overload of it), defined once
    per process with ``schema``."""
    key = f"{qualname}.{overload}" if overload else qualname
    # Every overload tvmfast defines under a name (a functional op's, one per set of outputs) has the
    # name's one schema.
    for other in (r for k, r in _REGISTRY.items() if k == qualname or k.startswith(qualname + ".")):
        if other.schema != schema:
            raise ValueError(
                f"tvmfast: torch op {qualname} is already registered with the schema {op_name}{other.schema}; "
                f"this function needs {op_name}{schema}. An op's schema cannot change within a process: "
                f"register it under another name")
    reg = _REGISTRY.get(key)
    if reg is not None:
        return reg
    try:
        existing = _C._dispatch_find_schema_or_throw(qualname, overload).schema()
    except RuntimeError:
        existing = None
    if existing is not None:
        raise ValueError(f"tvmfast: torch op {key} already exists and was not registered by tvmfast "
                         f"({existing}); register it under another name")
    definition = torch.library.Library(namespace, "FRAGMENT")
    definition.define((f"{op_name}.{overload}" if overload else op_name) + schema, tags=_TAGS)
    reg = _REGISTRY[key] = _Registration(key, schema, definition)
    return reg


def _register_kernels(reg: _Registration, op, bound, kinds: list[str], mutated: tuple[int, ...],
                      specs: tuple) -> None:
    kernel = _make_kernel(reg.qualname, bound, kinds, mutated, len(specs))
    native = dict(kinds=kinds, mutated=list(mutated))
    _install_kernels(reg, op, bound, kernel, native, _make_fake(reg.qualname, kinds, specs), kinds, mutated,
                     len(specs))


def _install_kernels(reg: _Registration, op, bound, kernel, native: dict | None, fake, kinds: list[str],
                     mutated: tuple[int, ...], num_returns: int) -> None:
    """Register an op's kernels (kinds and mutated: the op's own arguments): the C kernel where torch's
    stable C ABI allows it and ``native`` gives its arguments (it calls ``kernel`` for what it does not
    take), else the Python ``kernel``; the fake implementation, the vmap rule, the functorch check."""
    if reg.kernels is not None:
        # The same op again (a notebook cell run twice, a rebuilt kernel): its kernels are replaced.
        reg.kernels._destroy()
        reg.kernels = None
    namespace, _, op_name = reg.qualname.partition("::")
    lib = torch.library.Library(namespace, "FRAGMENT")
    try:
        if native is None or not _core._native_op_register(
                reg.qualname, namespace, op_name, bound, native.pop("kinds"), native.pop("mutated"), num_returns,
                kernel, _outputs_of(reg.qualname, num_returns), **native):
            lib.impl(op_name, kernel, "CompositeExplicitAutograd")
        torch.library.register_fake(op, fake, lib=lib)
        torch.library.register_vmap(op, _make_vmap_rule(reg.qualname, op, mutated, num_returns), lib=lib)
        lib.impl(op_name, _make_functorch_check(reg.qualname, kinds, num_returns > 0), _FUNCTORCH_BACK,
                 with_keyset=True)
    except BaseException:
        lib._destroy()
        raise
    reg.kernels = lib
    reg.bound = bound
    _call_in_c(op)
    # torch's Python dispatcher (used while tracing) caches the kernel it found per dispatch key.
    cache = getattr(op, "_dispatch_cache", None)
    if cache is not None:
        cache.clear()
