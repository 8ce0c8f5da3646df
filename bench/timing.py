"""The call paths the benchmarks compare, and how they are timed (CPU and GPU alike).

Paths are timed in interleaved rounds (each round runs every path once), so drift on a
noisy machine hits all of them alike; a path's figure is the median over rounds of the
mean time per call of one round, with the 25-75% spread. Statements are timed with
``timeit`` (as ``torch.utils.benchmark`` does underneath), each argument a global name so
that the statement itself costs every path the same little.
"""
from __future__ import annotations

import itertools
import statistics
import time
import timeit
from collections.abc import Callable

import torch
import tvm_ffi

import tvmfast
from bench.ctypes_call import make_ctypes_caller
from tvmfast import _core

REF = "tvm_ffi f(*torch)"
FLOOR = "C loop floor"
DEF_FLOOR = "Python-call floor: a bare Cython def method making the same call"
_OP_IDS = itertools.count()  # each bound function registers its own torch op


def statement(stmt: str, env: dict, sync: Callable | None = None) -> Callable[[int], float]:
    """A runner: ``run(n)`` times ``n`` executions of ``stmt`` and returns us per call.
    With ``sync`` (a GPU), the device is synchronized before, outside the timed region:
    the figure is host time per call, the queue never full."""
    timer = timeit.Timer(stmt, globals=env)

    def run(n):
        if sync is not None:
            sync()
        return timer.timeit(n) / n * 1e6

    return run


def c_loop(loop: Callable[[int], object], sync: Callable | None = None) -> Callable[[int], float]:
    """A runner for a C loop ``loop(n)`` that makes n calls itself."""

    def run(n):
        if sync is not None:
            sync()
        t0 = time.perf_counter()
        loop(n)
        return (time.perf_counter() - t0) / n * 1e6

    return run


def call_paths(rt_mod, tensors, frozen_positions, sync=None) -> tuple[dict, object]:
    """name -> runner for every way to call ``rt_mod`` on ``tensors`` (the last is the output),
    and the prepared call. ``frozen_positions`` are frozen in the frozen path."""
    func = rt_mod["main"]
    f = tvmfast.bind(rt_mod)
    f(*tensors)
    frozen = f.freeze({i: tensors[i] for i in frozen_positions})
    dynamic = [t for i, t in enumerate(tensors) if i not in frozen_positions]
    prepared = f.prepare(*tensors)
    op = f.as_torch_op(f"tvmfast_bench::op{next(_OP_IDS)}", mutates_args=(len(tensors) - 1,), example_args=tensors)
    # The tvm_ffi tensors view copies: a tvm_ffi view holds a C++ reference to its torch tensor, which
    # would make the op path's tensors unlike a user's (torch releases an op argument's extra reference
    # to a tensor with a Python object under the GIL; a held one never needs it).
    tvm_tensors = [tvm_ffi.from_dlpack(t.clone()) for t in tensors]
    env = dict(rt_mod=rt_mod, func=func, ts=tensors, from_dlpack=tvm_ffi.from_dlpack,
               to_dlpack=torch.utils.dlpack.to_dlpack, ctypes_call=make_ctypes_caller(func), f=f,
               f_hold=tvmfast.bind(rt_mod, release_gil=False), frozen=frozen, prepared=prepared, op=op,
               call_ptrs=prepared.call_ptrs)
    env.update({f"t{i}": t for i, t in enumerate(tensors)})
    env.update({f"v{i}": t for i, t in enumerate(tvm_tensors)})
    env.update({f"d{i}": t for i, t in enumerate(dynamic)})
    env.update({f"p{i}": t.data_ptr() for i, t in enumerate(tensors)})

    def names(prefix, count):
        return ", ".join(f"{prefix}{i}" for i in range(count))

    n = len(tensors)
    stmts = {
        "rt_mod(*tvm tensors)": f"rt_mod({names('v', n)})",
        "rt_mod['main'](*tvm tensors)": f"func({names('v', n)})",
        "rt_mod(*torch tensors)": f"rt_mod({names('t', n)})",
        REF: f"func({names('t', n)})",
        "from_dlpack(to_dlpack(t)) per call": "rt_mod(*[from_dlpack(to_dlpack(t)) for t in ts])",
        "ctypes TVMFFIFunctionCall": f"ctypes_call({names('t', n)})",
        "tvmfast dynamic": f"f({names('t', n)})",
        "tvmfast dynamic, release_gil=False": f"f_hold({names('t', n)})",
        "tvmfast frozen": f"frozen({names('d', len(dynamic))})",
        "tvmfast prepared": "prepared()",
        "tvmfast prepared.call_ptrs": f"call_ptrs({names('p', n)})",
        "torch custom op (as_torch_op)": f"op({names('t', n)})",
    }
    runners = {name: statement(stmt, env, sync) for name, stmt in stmts.items()}
    runners[FLOOR] = c_loop(lambda k: _core._floor_loop(prepared, k), sync)
    # what any call made from Python costs at least: the prepared call's TVMFFIFunctionCall from a
    # def method, on arguments converted once (an unchecked baseline, never an API)
    runners[DEF_FLOOR] = statement("def_floor.call()", dict(def_floor=_core._DefMethodFloor(prepared)), sync)
    return runners, prepared


def measure(runners: dict, rounds: int, number: int, warmup: int | None = None) -> dict[str, list[float]]:
    """Interleaved rounds: name -> us per call, one figure per round."""
    for run in runners.values():
        run(warmup or max(number // 10, 1))
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            samples[name].append(run(number))
    return samples


def summarize(samples: dict[str, list[float]], ref: str | None = REF, floor: str | None = FLOOR) -> dict:
    """name -> median, p25, p75 (and vs_ref, over_floor, vs_floor where those paths were timed)."""
    rows = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        rows[name] = dict(median=statistics.median(values), p25=q[0], p75=q[2])
    for row in rows.values():
        if ref in rows:
            row["vs_ref"] = row["median"] / rows[ref]["median"]
        if floor in rows:
            row["over_floor"] = row["median"] - rows[floor]["median"]
            row["vs_floor"] = row["median"] / rows[floor]["median"]
    return rows
