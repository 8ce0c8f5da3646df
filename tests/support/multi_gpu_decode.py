"""One rank of a tensor-parallel decode chain through tvmfast (started by torch.distributed.run,
one process per GPU): each step runs this rank's 16 seed GEMVs on its GPU, all-reduces the
activation, then scales it to a largest magnitude of 1.  Rank 0 then recomputes both ranks'
chains in one process and writes whether the results are equal, with each rank's host time
per GEMV, to --out.

    PYTHONPATH=tests torchrun --standalone --nproc-per-node=2 tests/support/multi_gpu_decode.py --out result.json
"""
import argparse
import json
import time

import torch
import torch.distributed as dist

import tvmfast
from support import tvm_kernels as kernels

LAYERS = 16


def rank_layers(rank, device):
    """This rank's weights: fresh but reproducible (seeded by rank), scaled to keep fp16 finite."""
    g = torch.Generator().manual_seed(1000 + rank)
    seed = kernels.SEED_GEMV
    layers = []
    for _ in range(LAYERS):
        _, w, s, z, _ = kernels.seed_gemv_args(seed["n"], seed["k"], device=device, generator=g)
        layers.append((w, s * 0.5, z))  # as bench.gpu's chain: the activations keep their scale
    return layers


def normalized(y):
    """The next step's input: the all-reduced activation scaled to a largest magnitude of 1 (the
    same operations in every process, so the reference is bit for bit the ranks' result)."""
    return y / y.abs().max()


def chain(f, x, layers, acts):
    acts[0].copy_(x)
    for i, (w, s, z) in enumerate(layers):
        f(acts[i], w, s, z, acts[i + 1])
    return acts[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--timed-steps", type=int, default=200)
    args = parser.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    f = tvmfast.bind(kernels.named_kernel(kernels.SEED_GEMV["name"]))
    layers = rank_layers(rank, device)
    g = torch.Generator().manual_seed(7)
    x0 = kernels.seed_gemv_args(device="cpu", generator=g)[0].to(device)
    acts = [torch.empty_like(x0) for _ in range(LAYERS + 1)]
    x = x0.clone()
    for _ in range(args.steps):
        y = chain(f, x, layers, acts).clone()
        dist.all_reduce(y)
        x = normalized(y)
    torch.cuda.synchronize()
    # Host time per GEMV of this rank's chain (no all-reduce in the timed loop: tvmfast's share).
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.timed_steps):
        chain(f, x0, layers, acts)
    host_us = (time.perf_counter() - t0) / (args.timed_steps * LAYERS) * 1e6
    torch.cuda.synchronize()
    times = [None] * world
    dist.all_gather_object(times, host_us)
    finals = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(finals, x)
    if rank == 0:
        # One process, both ranks' chains on this GPU: the reference.
        all_layers = [rank_layers(r, device) for r in range(world)]
        ref = x0.clone()
        for _ in range(args.steps):
            ref = normalized(sum(chain(f, ref, all_layers[r], acts).clone() for r in range(world)))
        ok = all(torch.equal(t.to(device), ref) for t in finals)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.timed_steps):
            chain(f, x0, all_layers[0], acts)
        single_us = (time.perf_counter() - t0) / (args.timed_steps * LAYERS) * 1e6
        torch.cuda.synchronize()
        with open(args.out, "w") as fh:
            json.dump(dict(matches_single_process=ok, world=world, host_us_per_gemv_per_rank=times,
                           host_us_per_gemv_single_process=single_us,
                           finite=bool(torch.isfinite(ref).all()),
                           largest=float(ref.abs().max())), fh, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
