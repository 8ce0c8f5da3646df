"""The per-op pieces ``tvmfast.torch_op`` registers for an op: its Python kernel (generated for the op's
signature), the conversion of a function's result into the op's outputs, the fake implementation, the vmap
rule and the functorch check (``torch_op``'s docstring says what each does and why)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.autograd.forward_ad as _forward_ad
from torch import _C

_INFERENCE_WRITE = ("Inplace update to inference tensor outside InferenceMode is not allowed. You can make a clone "
                    "to get a normal tensor before doing inplace update.")


def _make_kernel(qualname: str, bound, kinds: list[str], mutated: tuple[int, ...], num_returns: int) -> Callable:
    """The op's kernel, generated for its signature (an eager call runs it: no loops, no argument tuple)::

        def kernel(a0, a1, a2):
            if is_grad_enabled() and (a0.requires_grad or a1.requires_grad or a2.requires_grad):
                differentiable((a0, a1, a2))
            if forward_ad._current_level >= 0:
                forward_dual((a0, a1, a2))
            if a2.is_inference() and not is_inference_mode_enabled():
                inference_write(2)
            increment_version((a2,))
            out = call(a0, a1, a2)
            if out is not None:
                refuse_result(out)
    """
    names = [f"a{i}" for i in range(len(kinds))]
    args = ", ".join(names)
    lines = _kernel_prologue(names, [n for n, k in zip(names, kinds) if k == "Tensor"], mutated)
    if num_returns == 0:
        lines += [f"    out = call({args})",
                  "    if out is not None:",
                  "        refuse_result(out)"]
    else:
        lines.append(f"    return result(call({args}))")
    scope = _kernel_scope(qualname, bound, num_returns > 0)
    scope["result"] = _result_converter(qualname, num_returns)
    exec(compile("\n".join(lines), f"<tvmfast op {qualname}>", "exec"), scope)
    return scope["kernel"]


def _kernel_prologue(names: list[str], tensors: list[str], mutated) -> list[str]:
    """A generated kernel's first lines (its parameters ``names``): the differentiable-use and dual-tensor
    refusals over ``tensors``, the inference-write check and version bumps of the ``mutated`` positions."""
    args = ", ".join(names)
    packed = f"({args},)" if names else "()"
    lines = [f"def kernel({args}):"]
    if tensors:
        lines += [f"    if is_grad_enabled() and ({' or '.join(t + '.requires_grad' for t in tensors)}):",
                  f"        differentiable({packed})",
                  "    if forward_ad._current_level >= 0:",
                  f"        forward_dual({packed})"]
    for i in mutated:
        lines += [f"    if a{i}.is_inference() and not is_inference_mode_enabled():",
                  f"        inference_write({i})"]
    if mutated:
        lines.append(f"    increment_version(({''.join(f'a{i}, ' for i in mutated)}))")
    return lines


def _kernel_scope(qualname: str, bound, returning: bool) -> dict:
    """The names a generated kernel's lines use (``call`` is the bound function)."""
    return {
        "is_grad_enabled": _C.is_grad_enabled,
        "is_inference_mode_enabled": torch.is_inference_mode_enabled,
        "increment_version": _C._increment_version,
        "forward_ad": _forward_ad,
        "call": bound,
        "refuse_result": lambda out: _refuse_result(qualname, out),
        "differentiable": lambda a: _refuse_differentiable(qualname, a, returning),
        "forward_dual": lambda a: _refuse_dual(qualname, a),
        "inference_write": lambda pos: _refuse_inference_write(qualname, pos),
    }


def _result_converter(qualname: str, num_returns: int) -> Callable:
    """TVM's result (torch tensors when the inputs were torch; a tvm_ffi Array for several) as the schema's."""
    if num_returns == 1:
        def one(out):
            return out if type(out) is torch.Tensor else _as_torch(qualname, out, 0)
        return one

    def several(outs):
        if outs is None or isinstance(outs, torch.Tensor) or len(outs) != num_returns:
            raise RuntimeError(f"tvmfast: {qualname}: the function returned {_describe(outs)}; the op declares "
                               f"{num_returns} tensors (returns=)")
        return tuple(t if type(t) is torch.Tensor else _as_torch(qualname, t, i) for i, t in enumerate(outs))
    return several


def _outputs_of(qualname: str, num_returns: int) -> Callable:
    """For the native kernel: a function's result as the op's output tensors (a tuple), or the
    Python kernel's error."""
    if num_returns == 0:
        def none(value):
            if value is not None:
                _refuse_result(qualname, value)
            return ()
        return none
    convert = _result_converter(qualname, num_returns)
    if num_returns == 1:
        return lambda value: (convert(value),)
    return convert


def _refuse_result(qualname: str, value):
    raise RuntimeError(f"tvmfast: {qualname}: the function returned {_describe(value)}, but the op was registered "
                       f"without returns= (an op without it writes its outputs in place and returns nothing): "
                       f"pass as_torch_op(..., returns=...) with the output spec, e.g. "
                       f"returns=lambda *args: (shape, dtype)")


def _as_torch(qualname: str, value, index: int) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "__dlpack__"):
        return torch.from_dlpack(value)
    raise RuntimeError(f"tvmfast: {qualname}: the function returned {_describe(value)} for output #{index}; "
                       f"the op declares a tensor (returns=)")


def _describe(value) -> str:
    return "None" if value is None else f"a {type(value).__qualname__}"


def _refuse_differentiable(qualname: str, args: tuple, returning: bool):
    which = ", ".join(f"#{i}" for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad)
    if returning:
        how = (f"register a backward with torch.library.register_autograd({qualname!r}, backward, "
               f"setup_context=...), or call it under torch.no_grad() or on detached tensors")
    else:
        how = ("an op that writes its outputs in place cannot have one: call it under torch.no_grad() or on "
               "detached tensors, or make a returning op (as_torch_op(..., returns=...)) and register a backward "
               "with torch.library.register_autograd")
    raise RuntimeError(f"tvmfast: {qualname} has no autograd formula, but argument {which} requires grad and "
                       f"grad mode is on (its gradient would be silently wrong): {how}")


def _refuse_dual(qualname: str, args: tuple):
    level = _forward_ad._current_level
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor) and _forward_ad.unpack_dual(a, level=level).tangent is not None:
            raise RuntimeError(f"tvmfast: {qualname} has no forward-mode autograd formula, but argument #{i} "
                               f"is a dual tensor (torch.func.jvp, torch.autograd.forward_ad): its tangent "
                               f"would be silently wrong")


def _refuse_inference_write(qualname: str, pos: int):
    raise RuntimeError(f"tvmfast: {qualname} argument #{pos}: {_INFERENCE_WRITE}")


# ---------------------------------------------------------------------------
# Fake implementation, vmap rule, functorch transforms
# ---------------------------------------------------------------------------
def _make_fake(qualname: str, kinds: list[str], specs: tuple) -> Callable:
    tensors = [i for i, k in enumerate(kinds) if k == "Tensor"]

    def fake(*args):
        if _C.is_grad_enabled() and any(args[i].requires_grad for i in tensors):
            _refuse_differentiable(qualname, args, bool(specs))
        if not specs:
            return None
        outs = tuple(_fake_output(qualname, spec, args, i) for i, spec in enumerate(specs))
        return outs[0] if len(outs) == 1 else outs

    return fake


def _fake_output(qualname: str, spec, args: tuple, index: int) -> torch.Tensor:
    out = spec(*args)
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], torch.dtype):
        device = next((a.device for a in args if isinstance(a, torch.Tensor)), None)
        return torch.empty(tuple(out[0]), dtype=out[1], device=device)
    raise TypeError(f"tvmfast: {qualname}: output spec #{index} (returns=) gave {_describe(out)}; expected a "
                    f"tensor or a (shape, dtype) pair")


def _make_vmap_rule(qualname: str, op, mutated: tuple[int, ...], num_returns: int) -> Callable:
    """torch.vmap: the op once per batch element; written tensors must be batched (as for torch's in-place
    ops), and are written through their slices (via a contiguous copy where a slice is strided)."""

    def rule(info, in_dims, *args):
        unbatched = [i for i in mutated if in_dims[i] is None]
        if unbatched:
            batched = [i for i, d in enumerate(in_dims) if d is not None]
            raise RuntimeError(
                f"tvmfast: {qualname} under torch.vmap writes argument #{unbatched[0]}, which is not batched, "
                f"from batched argument(s) {', '.join(f'#{i}' for i in batched)}: pass a batched tensor to write")
        results = []
        for b in range(info.batch_size):
            sliced, write_back = [], []
            for i, (a, d) in enumerate(zip(args, in_dims)):
                if d is not None:
                    view = a.select(d, b)
                    a = view.contiguous()
                    if i in mutated and a is not view:
                        write_back.append((view, a))
                sliced.append(a)
            results.append(op(*sliced))
            for view, copy in write_back:
                view.copy_(copy)
        if num_returns == 0:
            return None, None
        if num_returns == 1:
            return torch.stack(results), 0
        return tuple(torch.stack(r) for r in zip(*results)), (0,) * num_returns

    return rule


# functorch's transforms (torch.func.grad, jvp, vmap) hand the kernel unwrapped tensors that no longer require
# grad; the tensors they differentiate are visible one key higher, at the back of the transform's layer.  That
# key is in the dispatch only while a transform runs, so plain eager calls never reach this check.
_FUNCTORCH_BACK = "FuncTorchDynamicLayerBackMode"


def _make_functorch_check(qualname: str, kinds: list[str], returning: bool) -> Callable:
    tensors = [i for i, k in enumerate(kinds) if k == "Tensor"]
    # What the key does for every op (unwrap this transform's tensors, run the op one level down); taken
    # while no kernel of ours is registered there.
    layer_back = _C._dispatch_get_computed_kernel_for_dispatch_key(qualname, _FUNCTORCH_BACK)

    def check(keyset, *args):
        if _C.is_grad_enabled() and any(args[i].requires_grad for i in tensors):
            _refuse_differentiable(qualname, args, returning)
        if _forward_ad._current_level >= 0:
            _refuse_dual(qualname, args)
        return layer_back.call_boxed(keyset, *args)

    return check
