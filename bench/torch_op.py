"""as_torch_op's native kernel against torch's own C++ ops, in one process.

    python -m bench.torch_op [--out DIR] [--kernel-dir DIR]

CPU (the CPU benchmark's ``add`` on 3 tensors of 128 float32; with --kernel-dir, the prebuilt
kernel summing 4 tensors of 16 float32 into a 5th): an eager call of the op against
``torch.ops.aten.alias`` (a C++ op that does nothing: torch's dispatcher alone) and the bound
function called directly.

CPU, functional ops (with apache-tvm): an add of two 4x256 float32 tensors made a functional op
(``outputs={2: tvmfast.alloc.like(0)}``: the op allocates its output) against ``torch.add(a, b)``
(an aten op that allocates its result), against a ``TORCH_LIBRARY`` C++ op that only allocates its
result (the least any op called from Python through ``torch.ops`` that returns a new tensor costs;
built with ``torch.utils.cpp_extension`` where a C++ compiler is there) and against
``torch.library.custom_op`` doing the same allocation and tvm_ffi call (functional, and out-variant
with the output allocated by the caller).

GPU (the seed's int4 GEMV, when CUDA is there): the op against what a PyTorch user writes
otherwise, a ``TORCH_LIBRARY`` C++ op launching the same kernel (TVM's CUDA source) on torch's
current stream, built here with ``torch.utils.cpp_extension`` (needs nvcc and a C++ compiler):
eagerly, and inside a module of 16 GEMVs compiled with ``torch.compile`` (default mode, no
CUDA graphs), us per GEMV.

Interleaved rounds, medians (GPU: host time, the device synchronized before each burst).
Writes results_torch_op.{json,md} and chart_torch_op.png into --out.
"""
from __future__ import annotations

import os
import re

import torch

import tvmfast
from bench import kernels, report
from bench.gpu import LAYERS, Decoder, step_runner
from bench.timing import measure, statement, summarize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")

OP = "tvmfast op (as_torch_op), eager"
ALIAS = "torch.ops.aten.alias (a C++ op that does nothing)"
DIRECT = "tvmfast bound function, called directly"
CPP_OP = "TORCH_LIBRARY C++ op (cpp_extension), eager"
FUNCTIONAL = "tvmfast functional op (outputs=, allocated in C), eager"
TORCH_ADD = "torch.add(a, b) (aten, allocates its result)"
ATEN_ADD = "torch.ops.aten.add.Tensor(a, b) (the same add through torch.ops, as a custom op is called)"
EMPTY_THEN_CALL = "torch.empty_like(a), then the bound function"
CUSTOM_FUNCTIONAL = "torch.library.custom_op, functional (torch.empty_like + tvm_ffi call)"
CUSTOM_OUT = "torch.library.custom_op, out-variant (tvm_ffi call; output allocated by the caller)"
CPP_ALLOC = "TORCH_LIBRARY C++ op that only allocates its result (at::empty_like), through torch.ops"
COMPILED_OP = "16-GEMV module, torch.compile: tvmfast op"
COMPILED_CPP = "16-GEMV module, torch.compile: C++ op"
BURST = 256
COLUMNS = {"default": [("path", "name"), ("us per call", "median"), ("25-75%", "spread"),
                       ("vs the anchor", "vs_ref")]}

_CPP_OP = """
#include <torch/library.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

{source}

// What a PyTorch user writes: the kernel launched on torch's current stream.
void seed_gemv(const at::Tensor& a0, const at::Tensor& a1, const at::Tensor& a2, const at::Tensor& a3,
               const at::Tensor& a4) {{
  {kernel}<<<dim3({grid}), dim3({block}), 0, at::cuda::getCurrentCUDAStream(a0.get_device())>>>({casts});
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}}

TORCH_LIBRARY(tvmfast_cpp_ref, m) {{
  m.def("seed_gemv(Tensor a0, Tensor a1, Tensor a2, Tensor a3, Tensor(a!) a4) -> ()");
}}
TORCH_LIBRARY_IMPL(tvmfast_cpp_ref, CUDA, m) {{ m.impl("seed_gemv", &seed_gemv); }}
"""
_SIGNATURE = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(([^)]*)\)\s*\{')
_PARAM = re.compile(r"(.*?)\s*(?:__restrict__\s*)?(\w+)_ptr$")


def build_cpp_op(seed: dict, kernel_dir: str | None):
    """torch.ops.tvmfast_cpp_ref.seed_gemv: TVM's CUDA source of the seed GEMV behind a C++ op."""
    from torch.utils.cpp_extension import load_inline  # noqa: PLC0415

    source = kernels.cuda_source(seed["name"], kernel_dir)
    kernel, params = _SIGNATURE.search(source).groups()
    pos = {name: i for i, name in enumerate(seed["params"])}
    casts = []
    for p in params.split(","):
        ctype, name = _PARAM.match(p.strip()).groups()
        casts.append(f"({ctype.replace('__restrict__', '').strip()})a{pos[name]}.data_ptr()")
    cuda = _CPP_OP.format(source=source, kernel=kernel, grid=", ".join(map(str, seed["grid"])),
                          block=", ".join(map(str, seed["block"])), casts=", ".join(casts))
    load_inline("tvmfast_cpp_ref", cpp_sources="", cuda_sources=cuda, is_python_module=False,
                # TVM's CUDA source uses half arithmetic, which torch's extension flags switch off.
                extra_cuda_cflags=["-O3", "-w", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                                   "-U__CUDA_NO_HALF2_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__"])
    return torch.ops.tvmfast_cpp_ref.seed_gemv.default


def cpu_table(rounds: int, kernel_dir: str | None) -> tuple[str, dict]:
    if kernel_dir is None:  # apache-tvm here: the CPU benchmark's add kernel
        mod, n, what = kernels.build_add(128), 3, "add, 3 tensors of 128 float32"
    else:  # TVM's runtime only: the prebuilt CPU kernel (out = t0 + t1 + t2 + t3)
        mod, n, what = kernels.named_kernel("sum5_f32_cpu", kernel_dir), 5, "sum of 4 tensors of 16 float32 into a 5th"
    ts = [torch.randn(128 if n == 3 else 16) for _ in range(n)]
    f = tvmfast.bind(mod, num_args=n)
    op = f.as_torch_op("tvmfast_op_bench::cpu", mutates_args=(n - 1,))
    op(*ts)
    torch.testing.assert_close(ts[-1], sum(ts[:-1]))
    env = dict(op=op, f=f, alias=torch.ops.aten.alias.default, **{f"t{i}": t for i, t in enumerate(ts)})
    args = ", ".join(f"t{i}" for i in range(n))
    runners = {ALIAS: statement("alias(t0)", env), OP: statement(f"op({args})", env),
               DIRECT: statement(f"f({args})", env)}
    return f"CPU: {what}, eager op calls (us per call, anchor: aten.alias)", summarize(
        measure(runners, rounds, 20000), ref=ALIAS, floor=None)


_CPP_ALLOC_OP = """
#include <torch/library.h>

// The least an op that returns a new tensor does: allocate it (no computation).
at::Tensor alloc_like(const at::Tensor& a, const at::Tensor& b) { return at::empty_like(a); }

TORCH_LIBRARY(tvmfast_cpp_alloc_ref, m) { m.def("alloc_like(Tensor a, Tensor b) -> Tensor"); }
TORCH_LIBRARY_IMPL(tvmfast_cpp_alloc_ref, CPU, m) { m.impl("alloc_like", &alloc_like); }
"""


def build_cpp_alloc_op():
    """torch.ops.tvmfast_cpp_alloc_ref.alloc_like: a C++ op that only allocates its result, the floor of
    an op call from Python that returns a new tensor; None where no C++ compiler builds it (with why)."""
    from torch.utils.cpp_extension import load_inline  # noqa: PLC0415

    try:
        load_inline("tvmfast_cpp_alloc_ref", cpp_sources=_CPP_ALLOC_OP, is_python_module=False,
                    extra_cflags=["-O2"])
    except Exception as err:  # noqa: BLE001 - no compiler, no headers: the row is left out, and why is said
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return torch.ops.tvmfast_cpp_alloc_ref.alloc_like.default, None


def functional_table(rounds: int, notes: list) -> tuple[str, dict]:
    """A functional op (outputs allocated in C) against torch.add and torch.library.custom_op."""
    shape = (4, 256)
    mod = kernels.build_add(shape[0] * shape[1])
    a, b = torch.randn(shape).reshape(-1), torch.randn(shape).reshape(-1)
    f = tvmfast.bind(mod, num_args=3)
    op = f.as_torch_op("tvmfast_op_bench::functional_add", example_args=(a, b, torch.empty_like(a)),
                       outputs={2: tvmfast.alloc.like(0)})
    fn = f.function

    @torch.library.custom_op("tvmfast_op_bench::custom_functional_add", mutates_args=())
    def custom_functional(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        fn(x, y, out)
        return out

    @torch.library.custom_op("tvmfast_op_bench::custom_out_add", mutates_args=("out",))
    def custom_out(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor) -> None:
        fn(x, y, out)

    out = torch.empty_like(a)
    for got in (op(a, b), custom_functional(a, b), (custom_out(a, b, out), out)[1]):
        torch.testing.assert_close(got, a + b, rtol=0, atol=0)
    cpp_alloc, why_not = build_cpp_alloc_op()
    env = dict(op=op, f=f, a=a, b=b, out=out, torch=torch, custom_functional=custom_functional,
               custom_out=custom_out, cpp_alloc=cpp_alloc)
    runners = {TORCH_ADD: statement("torch.add(a, b)", env), FUNCTIONAL: statement("op(a, b)", env),
               EMPTY_THEN_CALL: statement("f(a, b, torch.empty_like(a))", env),
               ALIAS: statement("torch.ops.aten.alias.default(a)", env),
               ATEN_ADD: statement("torch.ops.aten.add.Tensor(a, b)", env),
               CUSTOM_FUNCTIONAL: statement("custom_functional(a, b)", env),
               CUSTOM_OUT: statement("custom_out(a, b, out)", env)}
    if cpp_alloc is not None:
        assert cpp_alloc(a, b).shape == a.shape
        runners[CPP_ALLOC] = statement("cpp_alloc(a, b)", env)
    else:
        notes.append(f"CPU: the C++ op that only allocates was not built ({why_not}); its row is left out.")
    return (f"CPU: functional ops, an add of two {shape[0]}x{shape[1]} float32 tensors into a new one "
            f"(us per call, anchor: torch.add)", summarize(measure(runners, rounds, 5000), ref=TORCH_ADD, floor=None))


def gpu_tables(rounds: int, kernel_dir: str | None, notes: list) -> dict:
    seed = kernels.SEED_GEMV
    mod = kernels.named_kernel(seed["name"], kernel_dir)
    g = torch.Generator().manual_seed(0)
    ts = kernels.seed_gemv_args(seed["n"], seed["k"], device="cuda", generator=g)
    f = tvmfast.bind(mod, num_args=5)
    op = f.as_torch_op("tvmfast_op_bench::seed_gemv", mutates_args=(4,))
    cpp = build_cpp_op(seed, kernel_dir)
    ref = kernels.int4_gemv_reference(*[t.cpu() for t in ts[:4]]).float()
    for name, call in ((OP, op), (CPP_OP, cpp)):
        ts[4].fill_(float("nan"))
        call(*ts)
        torch.cuda.synchronize()
        err = ((ts[4].cpu().float() - ref).abs().max() / ref.abs().max()).item()
        if not err < 1e-2:
            raise AssertionError(f"{name}: relative error {err} against the torch reference")
    sync = torch.cuda.synchronize
    env = dict(op=op, cpp=cpp, f=f, alias=torch.ops.aten.alias.default, **{f"t{i}": t for i, t in enumerate(ts)})
    args = "t0, t1, t2, t3, t4"
    runners = {CPP_OP: statement(f"cpp({args})", env, sync), OP: statement(f"op({args})", env, sync),
               DIRECT: statement(f"f({args})", env, sync), ALIAS: statement("alias(t0)", env, sync)}
    eager = summarize(measure(runners, rounds, BURST), ref=CPP_OP, floor=None)

    layers = []
    for _ in range(LAYERS):
        _, w, s, z, _ = kernels.seed_gemv_args(seed["n"], seed["k"], device="cuda", generator=g)
        layers.append((w, s * 0.5, z))  # keeps the activations' scale about constant over 16 layers
    x = ts[0]
    models = {COMPILED_OP: Decoder(op, layers), COMPILED_CPP: Decoder(cpp, layers)}
    expected = models[COMPILED_CPP](x)
    compiled = {}
    for name, m in models.items():
        compiled[name] = torch.compile(m, fullgraph=True)
        for _ in range(3):
            got = compiled[name](x)
        if not torch.equal(got, expected):
            raise AssertionError(f"{name}: differs from the eager C++ op module")

    chain = summarize(measure({name: step_runner(lambda c=c: c(x)) for name, c in compiled.items()}, rounds, 64,
                              warmup=10), ref=COMPILED_CPP, floor=None)
    for title, rows, anchor, subject in (("eager", eager, CPP_OP, OP), ("torch.compile", chain, COMPILED_CPP,
                                                                         COMPILED_OP)):
        ratio = rows[subject]["median"] / rows[anchor]["median"]
        notes.append(f"GPU {title}: the tvmfast op is {ratio:.2f}x the C++ op's time "
                     f"(target <= 1.1x: {'met' if ratio <= 1.1 else 'missed'}).")
    return {"Seed int4 GEMV on the GPU, eager op calls (host us per call, anchor: the C++ op)": eager,
            f"Seed int4 GEMV on the GPU, {LAYERS}-GEMV module under torch.compile, no CUDA graphs "
            f"(us per GEMV, anchor: the C++ op)": chain}


def main(argv=None):
    args = report.bench_parser("bench.torch_op", __doc__, OUT, 31).parse_args(argv)
    from tvmfast import _core  # noqa: PLC0415

    result = dict(info=report.environment(), command=report.command_line("bench.torch_op", argv), tables={},
                  notes=[], method=f"Median over {args.rounds} interleaved rounds; GPU: host time, the device "
                                   f"synchronized before each burst.")
    result["notes"].append(f"as_torch_op kernels: {_core._native_op_state()}")
    title, rows = cpu_table(args.rounds, args.kernel_dir)
    result["tables"][title] = rows
    ratio = rows[OP]["median"] / rows[ALIAS]["median"]
    result["notes"].append(f"CPU: an eager op call is {ratio:.2f}x torch.ops.aten.alias "
                           f"(target <= 1.3x: {'met' if ratio <= 1.3 else 'missed'}).")
    if args.kernel_dir is None:  # apache-tvm builds the add kernel
        title, rows = functional_table(args.rounds, result["notes"])
        result["tables"][title] = rows
        vs_add = rows[FUNCTIONAL]["median"] / rows[TORCH_ADD]["median"]
        vs_custom = rows[CUSTOM_FUNCTIONAL]["median"] / rows[FUNCTIONAL]["median"]
        floor = rows[ALIAS]["median"] / rows[TORCH_ADD]["median"]
        aten_add = rows[ATEN_ADD]["median"] / rows[TORCH_ADD]["median"]
        cpp_alloc = ""
        if CPP_ALLOC in rows:
            ratio = rows[CPP_ALLOC]["median"] / rows[TORCH_ADD]["median"]
            cpp_alloc = f", a C++ op that only allocates its result {ratio:.2f}x"
        result["notes"].append(
            f"CPU: a functional op call is {vs_add:.2f}x torch.add (target <= 1.2x: "
            f"{'met' if vs_add <= 1.2 else 'missed'}; through the same Python-to-dispatcher path, aten.alias, which "
            f"does nothing, is {floor:.2f}x{cpp_alloc} and aten.add.Tensor {aten_add:.2f}x) and {vs_custom:.1f}x "
            f"faster than torch.library.custom_op doing the same (target >= 5x: "
            f"{'met' if vs_custom >= 5 else 'missed'}).")
    if torch.cuda.is_available() and not args.cpu_only:
        result["tables"].update(gpu_tables(args.rounds, args.kernel_dir, result["notes"]))
    for title, table in result["tables"].items():
        print(f"{title}: " + ", ".join(f"{n} {r['median']:.3f}" for n, r in table.items()), flush=True)
    for note in result["notes"]:
        print(note)
    panels = [dict(title=title, bars=rows, xlabel="us") for title, rows in result["tables"].items()]
    print(report.write(result, args.out, "torch_op", COLUMNS, panels))


if __name__ == "__main__":
    main()
