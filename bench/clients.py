"""A library that ships tvm_ffi kernels, called through its own API and as a tvmfast functional op.

    python -m bench.clients [--out DIR] [--rounds N]     # needs CUDA and quack-kernels

quack-kernels (CuTe DSL kernels compiled with ``--enable-tvm-ffi``) calls its kernels through
``torch.library`` ops that it bypasses in eager mode, because the dispatch and functionalization
boundary costs more than its small kernels run.  Here its softmax forward, an out-variant kernel
``softmax(x, out)``, is taken as quack compiles it and registered with
``as_torch_op(..., outputs={1: tvmfast.alloc.like(0)})``: a functional op whose C kernel allocates
``out`` and launches the kernel, with no Python in the call.  Against it, per call of host time:

* quack's public forward ``quack.softmax.softmax_fwd(x)`` (allocates with ``torch.empty_like``, then
  its eager-bypass op);
* quack's autograd API ``quack.softmax.softmax(x)`` under ``torch.no_grad()``;
* the compiled kernel called directly, ``compiled(x, out)`` after ``torch.empty_like(x)``;
* tvmfast's bound function ``f(x, out)`` after ``torch.empty_like(x)``.

Outputs are checked equal across paths (bitwise) and against ``torch.softmax``.  Interleaved rounds
of bursts, the device synchronized before each burst; medians.  Writes results_clients.{json,md}
into --out.
"""
from __future__ import annotations

import os

import torch

import tvmfast
from bench import report
from bench.timing import measure, statement, summarize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
BURST = 256
COLUMNS = {"default": [("path", "name"), ("host us per call", "median"), ("25-75%", "spread"),
                       ("vs quack's softmax_fwd", "vs_ref")]}
QUACK_FWD = "quack.softmax.softmax_fwd(x) (its public forward)"
QUACK_AUTOGRAD = "quack.softmax.softmax(x), under torch.no_grad()"
COMPILED = "torch.empty_like(x), then quack's compiled kernel compiled(x, out)"
BOUND = "torch.empty_like(x), then tvmfast bind(compiled): f(x, out)"
OP = "tvmfast functional op (outputs allocated in C): op(x)"


def softmax_table(rounds: int, shape=(32, 4096), dtype=torch.bfloat16):
    import importlib  # noqa: PLC0415

    # The module: `from quack import softmax` gives the function the package exports under that name.
    qs = importlib.import_module("quack.softmax")
    from quack.cute_dsl_utils import torch2cute_dtype_map  # noqa: PLC0415

    x = torch.randn(shape, device="cuda", dtype=dtype)
    cute_dtype = torch2cute_dtype_map[dtype]
    compiled = qs.Softmax.compile(cute_dtype, cute_dtype, shape[1])
    f = tvmfast.bind(compiled)
    op = f.as_torch_op("tvmfast_clients::quack_softmax", example_args=(x, torch.empty_like(x)),
                       outputs={1: tvmfast.alloc.like(0)})
    ref = qs.softmax_fwd(x)
    with torch.no_grad():
        outs = {QUACK_AUTOGRAD: qs.softmax(x), OP: op(x)}
    out = torch.empty_like(x)
    compiled(x, out)
    outs[COMPILED] = out
    out2 = torch.empty_like(x)
    f(x, out2)
    outs[BOUND] = out2
    torch.cuda.synchronize()
    for name, got in outs.items():
        if not torch.equal(got, ref):
            raise AssertionError(f"{name}: differs from quack's softmax_fwd")
    torch.testing.assert_close(ref.float(), torch.softmax(x.float(), dim=-1), atol=2e-2, rtol=2e-2)
    sync = torch.cuda.synchronize
    env = dict(qs=qs, x=x, op=op, f=f, compiled=compiled, torch=torch)
    runners = {QUACK_FWD: statement("qs.softmax_fwd(x)", env, sync),
               QUACK_AUTOGRAD: statement("qs.softmax(x)", env, sync),
               COMPILED: statement("compiled(x, torch.empty_like(x))", env, sync),
               BOUND: statement("f(x, torch.empty_like(x))", env, sync),
               OP: statement("op(x)", env, sync)}
    with torch.no_grad():
        rows = summarize(measure(runners, rounds, BURST), ref=QUACK_FWD, floor=None)
    title = (f"quack-kernels softmax forward, {shape[0]}x{shape[1]} {str(dtype).replace('torch.', '')} on the GPU "
             f"(host us per call, anchor: quack's softmax_fwd)")
    return title, rows


def main(argv=None):
    args = report.bench_parser("bench.clients", __doc__, OUT, 31).parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.clients needs CUDA")
    from importlib import metadata  # noqa: PLC0415

    from tvmfast import _core  # noqa: PLC0415

    versions = {name: metadata.version(name) for name in ("quack-kernels", "nvidia-cutlass-dsl")}
    result = dict(info=report.environment(), command=report.command_line("bench.clients", argv), tables={},
                  notes=[f"as_torch_op kernels: {_core._native_op_state()}",
                         "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())],
                  method=f"Median over {args.rounds} interleaved rounds of {BURST} calls; host time, the device "
                         f"synchronized before each burst.")
    title, rows = softmax_table(args.rounds)
    result["tables"][title] = rows
    ratio = rows[OP]["median"] / rows[QUACK_FWD]["median"]
    result["notes"].append(f"the tvmfast functional op takes {ratio:.2f}x the host time of quack's own softmax_fwd; "
                           f"outputs bitwise equal across paths.")
    for name, row in rows.items():
        print(f"{name}: {row['median']:.3f} us", flush=True)
    for note in result["notes"]:
        print(note)
    panels = [dict(title=title, bars=rows, xlabel="us") for title, rows in result["tables"].items()]
    print(report.write(result, args.out, "clients", COLUMNS, panels))


if __name__ == "__main__":
    main()
