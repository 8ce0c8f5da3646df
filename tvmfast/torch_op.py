"""Register a bound TVM function as a ``torch.library`` custom op (for torch.compile)."""
from __future__ import annotations

from typing import Any, Sequence

import torch

_ANNOTATIONS = {bool: "bool", int: "int", float: "float"}


def make_torch_op(bound, name: str, mutates_args: Sequence[int] = (), example_args: Sequence[Any] | None = None):
    """See :meth:`tvmfast.BoundFunction.as_torch_op`."""
    if "::" not in name:
        raise ValueError(f"tvmfast: custom op name must look like 'namespace::name', got {name!r}")
    if example_args is not None:
        kinds = []
        for i, a in enumerate(example_args):
            if isinstance(a, torch.Tensor):
                kinds.append("torch.Tensor")
            elif type(a) in _ANNOTATIONS:
                kinds.append(_ANNOTATIONS[type(a)])
            else:
                raise TypeError(f"tvmfast: as_torch_op example argument #{i}: expected a torch.Tensor, "
                                f"int, float or bool, got {type(a).__qualname__}")
    else:
        n = bound.num_args if bound.num_args >= 0 else None
        if n is None:
            raise ValueError("tvmfast: as_torch_op() needs bind(..., num_args=N) or example_args=")
        kinds = ["torch.Tensor"] * n
    for pos in mutates_args:
        if not 0 <= pos < len(kinds) or kinds[pos] != "torch.Tensor":
            raise ValueError(f"tvmfast: mutates_args position {pos} is not a tensor argument")
    params = [f"a{i}" for i in range(len(kinds))]
    # custom_op reads the schema from annotations, so the wrapper gets a real signature.
    src = (f"def _op({', '.join(f'{p}: {k}' for p, k in zip(params, kinds))}) -> None:\n"
           f"    _bound({', '.join(params)})\n"
           f"def _fake({', '.join(f'{p}: {k}' for p, k in zip(params, kinds))}) -> None:\n"
           f"    return None\n")
    namespace = {"torch": torch, "_bound": bound}
    exec(src, namespace)  # noqa: S102 - generated from argument kinds only
    op = torch.library.custom_op(name, mutates_args=tuple(params[p] for p in mutates_args))(namespace["_op"])
    # The kernels write their outputs in place and return nothing, so the fake
    # implementation has no shapes to produce: tracing sees the mutation only.
    op.register_fake(namespace["_fake"])
    return op
