"""Register a bound TVM function as a torch custom op (for torch.compile)."""
from __future__ import annotations

import string
from typing import Any, Sequence

import torch

_SCALAR_SCHEMA = {bool: "bool", int: "int", float: "float"}
# torch deregisters an op when its Library object is collected: keep them for good.
_LIBRARIES: dict[str, torch.library.Library] = {}


def make_torch_op(bound, name: str, mutates_args: Sequence[int] = (), example_args: Sequence[Any] | None = None):
    """See :meth:`tvmfast.BoundFunction.as_torch_op`."""
    namespace, sep, op_name = name.partition("::")
    if not sep or not namespace or not op_name.isidentifier():
        raise ValueError(f"tvmfast: custom op name must look like 'namespace::name', got {name!r}")
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
    elif bound.num_args >= 0:
        kinds = ["Tensor"] * bound.num_args
    else:
        raise ValueError("tvmfast: as_torch_op() needs bind(..., num_args=N) or example_args=")
    for pos in mutates_args:
        if not 0 <= pos < len(kinds) or kinds[pos] != "Tensor":
            raise ValueError(f"tvmfast: mutates_args position {pos} is not a tensor argument")
    # The schema tells torch which tensors the kernel writes ("Tensor(a!)"), so
    # functionalization under torch.compile handles them; the op returns nothing.
    aliases = iter(string.ascii_lowercase)
    params = []
    for i, kind in enumerate(kinds):
        if i in mutates_args:
            kind = f"Tensor({next(aliases)}!)"
        params.append(f"{kind} a{i}")
    lib = _LIBRARIES.get(namespace)
    if lib is None:
        lib = _LIBRARIES[namespace] = torch.library.Library(namespace, "FRAGMENT")
    lib.define(f"{op_name}({', '.join(params)}) -> ()")
    # A plain C++-dispatcher kernel: an eager call costs ~1.5 us over the bound
    # function, where torch.library.custom_op's Python wrapper costs ~14 us.
    lib.impl(op_name, bound, "CompositeExplicitAutograd")
    # Kernels write their outputs in place and return nothing, so the fake
    # implementation has no shapes to produce: tracing sees the mutation only.
    torch.library.register_fake(f"{namespace}::{op_name}", _no_output, lib=lib)
    return getattr(getattr(torch.ops, namespace), op_name).default


def _no_output(*args):
    return None
