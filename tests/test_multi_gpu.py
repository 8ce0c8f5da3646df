"""Two GPUs: one bound function serving tensors on cuda:0 and cuda:1 (each launch on the
tensors' device, on torch's current stream for that device, TVM's per-device stream left as
it was), CUDA graphs captured on device 1, one thread per device, and a two-process
torch.distributed (NCCL) decode chain whose ranks call the seed GEMV through tvmfast.

Skipped unless CUDA sees at least two devices.  Kernels come from apache-tvm (built here) or
from $TVMFAST_KERNEL_DIR, as in test_gpu.py.
"""
import json
import os
import subprocess
import sys
import threading

import pytest
import tvm_ffi

import tvmfast
from support import tvm_kernels as kernels

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs"),
]
KDL_CUDA = 2
N = 65536
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def add_big():
    return kernels.named_kernel("add_f32_65536")


def env_streams():
    return [tvm_ffi.core._env_get_current_stream(KDL_CUDA, d) for d in range(2)]


def slow_stream_call(device, call, a, new_a):
    """On a fresh stream of ``device`` only: a long sleep, a copy into ``a``, then ``call()``.
    The result sees the copy only if the kernel ran after it on that same stream."""
    s = torch.cuda.Stream(device=device)
    with torch.cuda.device(device), torch.cuda.stream(s):
        torch.cuda._sleep(20_000_000)
        a.copy_(new_a)
        call()
    return s


@pytest.mark.parametrize("form", ["dynamic", "frozen", "prepared"])
def test_alternating_devices_each_on_its_own_stream(add_big, form):
    f = tvmfast.bind(add_big)
    before = env_streams()
    per_device = {}
    for d in (0, 1):
        dev = f"cuda:{d}"
        a, b = torch.zeros(N, device=dev), torch.randn(N, device=dev)
        out = torch.full((N,), float("nan"), device=dev)
        per_device[d] = (a, b, out, torch.randn(N, device=dev))
    frozen = {d: f.freeze({1: per_device[d][1]}) for d in (0, 1)}
    prepared = {d: f.prepare(*per_device[d][:3]) for d in (0, 1)}
    for _ in range(3):
        for d in (1, 0):
            a, b, out, new_a = per_device[d]
            out.fill_(float("nan"))
            call = {"dynamic": lambda a=a, b=b, out=out: f(a, b, out),
                    "frozen": lambda d=d, a=a, out=out: frozen[d](a, out),
                    "prepared": lambda d=d: prepared[d]()}[form]
            s = slow_stream_call(d, call, a, new_a)
            s.synchronize()
            assert torch.equal(out, new_a + b), f"cuda:{d}"
            new_a.copy_(torch.randn(N, device=f"cuda:{d}"))
            assert env_streams() == before


def test_mixed_devices_are_refused_as_tvm_would(add_big):
    f = tvmfast.bind(add_big)
    a0, a1 = torch.randn(N, device="cuda:0"), torch.randn(N, device="cuda:1")
    with pytest.raises(ValueError, match=r"argument #1\b.*cuda:1.*argument #0 is on cuda:0"):
        f(a0, a1, torch.empty(N, device="cuda:0"))
    with pytest.raises(ValueError, match=r"argument #2\b.*cpu.*argument #0 is on cuda:1|argument #\d"):
        f(a1, a1, torch.empty(N))


def test_cuda_graph_captured_on_cuda_1(add_big):
    f = tvmfast.bind(add_big)
    with torch.cuda.device(1):
        a, b = torch.randn(N, device="cuda:1"), torch.randn(N, device="cuda:1")
        out = torch.full((N,), float("nan"), device="cuda:1")
        p = f.prepare(a, b, out)
        f(a, b, out)  # warm up outside the capture
        torch.cuda.synchronize(1)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            p()
        for _ in range(3):
            a.copy_(torch.randn(N, device="cuda:1"))
            out.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize(1)
            assert torch.equal(out, a + b)


def test_release_gil_one_thread_per_device(add_big):
    f = tvmfast.bind(add_big, release_gil=True)
    errors = []

    def worker(d):
        try:
            dev = f"cuda:{d}"
            with torch.cuda.device(d):
                s = torch.cuda.Stream(device=d)
                with torch.cuda.stream(s):
                    for _ in range(200):
                        a, b = torch.randn(N, device=dev), torch.randn(N, device=dev)
                        out = torch.empty(N, device=dev)
                        f(a, b, out)
                        assert torch.equal(out, a + b)
        except BaseException as e:  # noqa: B036  (reported below)
            errors.append((d, e))

    threads = [threading.Thread(target=worker, args=(d,)) for d in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_distributed_decode_chain_matches_one_process(tmp_path):
    """Two NCCL ranks, one GPU each, each running its half of a tensor-parallel decode chain
    of seed GEMVs through tvmfast with an all-reduce after every step: the result equals one
    process computing both halves."""
    if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
        pytest.skip("needs torch.distributed with NCCL")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "decode.json"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           os.path.join(HERE, "support", "multi_gpu_decode.py"), "--out", str(out), "--steps", "8"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["matches_single_process"] and result["finite"] and result["largest"] > 0, result
