"""Every argument kind tvm_ffi accepts: tvm_ffi's call against tvmfast's, cell by cell, in one process.

    python -m bench.matrix               # full run: bench/out/results_matrix.{md,json}, chart_matrix.png
    python -m bench.matrix --quick       # a few iterations (the smoke test)

A cell is one argument kind passed to one function: ``testing.echo`` (gives its argument back, so
the result's conversion is timed too), ``testing.nop`` (returns None), ``testing.apply`` and
``testing.test_raise_error`` (errors), or a TVM add kernel (tensors that need a real kernel). For
each cell, the three calls a user makes, ``fn(*args)`` (tvm_ffi), ``f(*args)`` with
``f = tvmfast.bind(fn)`` (tvmfast dynamic) and ``p()`` with ``p = f.prepare(*args)`` (tvmfast
prepared, where prepare takes the kind), are timed in interleaved rounds (medians: the machine's
drift hits the three alike), on tiny tensors (16 float32), so the call's conversions dominate.
An error cell times each call wrapped in the same try/except.

Before a cell is timed, tvmfast's outcome is checked against tvm_ffi's on the same arguments: the
same result (type, value, element by element, and which argument's memory or object it is), or the
same error (type and message), and the same effect on the arguments. The ``same`` column records
it; a cell that differs is printed loudly and the run exits with 1.

The cells and the check are defined once, in tests/support/argument_kinds.py (the tests' support
package; tests/test_argument_kinds.py checks every cell).
Copy bench/out/results_matrix.json and chart_matrix.png to bench/results/ to make a run the
project's figures (the run prints the command).
"""
from __future__ import annotations

import os
import sys

import torch

import tvmfast
from bench import kernels, report  # noqa: F401  (bench.kernels puts tests/ on sys.path for `support`)
from bench.timing import measure, statement, summarize
from support.argument_kinds import DYNAMIC, PREPARED, REF, Cell, Check, N, cells, check, returns  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
TAG = "matrix"
BURST_US = 20000  # a round of one path: calls enough for about this many us (--quick: a 40th)


def runners(cell: Cell, f, p, args: tuple, guarded: bool) -> dict:
    """name -> runner (bench.timing.statement) of the cell's calls; ``guarded``: each call wrapped
    in the same try/except (an error cell)."""
    names = ", ".join(f"a{i}" for i in range(len(args)))
    env = dict(fn=cell.fn, f=f, p=p, **{f"a{i}": v for i, v in enumerate(args)})
    calls = {REF: f"fn({names})", DYNAMIC: f"f({names})"}
    if p is not None:
        calls[PREPARED] = "p()"

    def stmt(call):
        return f"try:\n    {call}\nexcept Exception:\n    pass" if guarded else call

    return {name: statement(stmt(call), env) for name, call in calls.items()}


def time_cell(cell: Cell, rounds: int, burst_us: float) -> tuple[dict, Check]:
    """The cell's row: its outcome checked, then its calls timed (us per call)."""
    f = tvmfast.bind(cell.fn)
    c = check(cell, f)
    args = cell.make_args()
    try:
        p = f.prepare(*args)
    except Exception:  # noqa: BLE001  (prepare refuses the kind: no prepared figure)
        p = None
    raised = cell.error or any(o is not None and o.error is not None for o in (c.ref, c.dynamic, c.prepared))
    paths = runners(cell, f, p, args, guarded=raised)
    paths[REF](20)
    per_call = paths[REF](50)
    number = max(10, min(200_000, int(burst_us / max(per_call, 1e-3))))
    rows = summarize(measure(paths, rounds, number), ref=REF, floor=None)
    row = dict(returns=returns(c), tvm_ffi=rows[REF]["median"], dynamic=rows[DYNAMIC]["median"],
               prepared=rows[PREPARED]["median"] if PREPARED in rows else None,
               dynamic_vs_ref=rows[DYNAMIC]["vs_ref"], prepared_vs_ref=rows[PREPARED]["vs_ref"] if PREPARED in rows
               else None, same=c.same, calls_per_round=number,
               p25_p75={name: [r["p25"], r["p75"]] for name, r in rows.items()})
    if c.prepare_error is not None:
        row["prepare"] = f"{type(c.prepare_error).__name__}: {c.prepare_error}"
    if not c.same:
        row["differs"] = c.differences()
    return row, c


def main(argv=None) -> int:
    parser = report.bench_parser("bench.matrix", __doc__, OUT, 21)
    parser.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
    args = parser.parse_args(argv)
    burst = BURST_US
    if args.quick:
        args.rounds, burst = 3, BURST_US / 40
    cuda = torch.cuda.is_available() and not args.cpu_only
    all_cells = cells(torch_cuda=cuda, kernel_dir=args.kernel_dir)
    result = dict(info=report.environment(), command=report.command_line("bench.matrix", argv), tables={},
                  notes=[], method=f"Per cell, {args.rounds} interleaved rounds of the three calls, each round "
                                   f"about {burst / 1000:g} ms of calls per path; median us per call. Tensors of "
                                   f"{N} float32 (the CUDA add: 1024).")
    if not cuda:
        result["notes"].append("No CUDA tensor cells: " + ("--cpu-only." if args.cpu_only else "no CUDA here."))
    tag = TAG + ("_gpu" if cuda else "")  # a CUDA machine's run (its CPU cells too) is kept apart
    differ = {}
    for i, cell in enumerate(all_cells, 1):
        title = f"{report.MATRIX_TITLE}: {cell.group} (us per call)"
        row, c = time_cell(cell, args.rounds, burst)
        result["tables"].setdefault(title, {})[cell.name] = row
        prepared = (f"prepared {row['prepared']:.3f} us ({row['prepared_vs_ref']:.2f}x)" if row["prepared"] is not None
                    else f"prepared - ({row.get('prepare', '')[:60]})")
        print(f"[{i:2d}/{len(all_cells)}] {cell.name}: tvm_ffi {row['tvm_ffi']:.3f} us, "
              f"dynamic {row['dynamic']:.3f} us ({row['dynamic_vs_ref']:.2f}x), {prepared}; {row['returns']}; "
              f"{'same' if c.same else 'DIFFERS'}", flush=True)
        if not c.same:
            differ[cell.name] = row["differs"]
            print(f"!!! tvmfast DIFFERS from tvm_ffi on {cell.name!r}: {row['differs']}", file=sys.stderr, flush=True)
    if differ:
        result["notes"].append("tvmfast differs from tvm_ffi on: " + "; ".join(differ) + ".")
    panels = [dict(title=f"tvmfast dynamic / tvm_ffi: {title.split(': ', 1)[1].rsplit(' (', 1)[0]}",
                   xlabel="time over tvm_ffi's (1: the same)",
                   bars={name: dict(median=row["dynamic_vs_ref"]) for name, row in rows.items()})
              for title, rows in result["tables"].items()]
    print(report.write(result, args.out, tag, {"default": report.MATRIX_COLUMNS}, panels))
    print(report.written(args.out, tag))
    if differ:
        print(f"\n!!! WARNING: tvmfast's outcome differs from tvm_ffi's in {len(differ)} cell(s):\n"
              + "\n".join(f"  {name}: {what}" for name, what in differ.items()), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
