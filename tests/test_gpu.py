"""CUDA: the forum thread's kernel, streams, CUDA graphs, devices, memory.

Skipped without CUDA. Kernels are built here with apache-tvm, or loaded from the folder
$TVMFAST_KERNEL_DIR exported by ``python -m bench.kernels DIR`` (for a machine with only
TVM's runtime).
"""
import gc
import os
import sys

import pytest
import tvm_ffi

import tvmfast
from support import tvm_kernels as kernels

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
KDL_CUDA = 2


@pytest.fixture(scope="module")
def gemv():
    return kernels.named_kernel(kernels.SEED_GEMV["name"])


@pytest.fixture(scope="module")
def add_big():
    return kernels.named_kernel("add_f32_65536")


@pytest.fixture(scope="module")
def add_tiny():
    return kernels.named_kernel("add_f32_1024")


def env_stream(device_id=0):
    return tvm_ffi.core._env_get_current_stream(KDL_CUDA, device_id)


def seed_relative_error(out, args):
    ref = kernels.int4_gemv_reference(*[t.cpu() for t in args[:4]]).float()
    return ((out.cpu().float() - ref).abs().max() / ref.abs().max()).item()


def test_seed_kernel_matches_torch_and_rt_mod(gemv):
    """The thread's scheduled kernel (fp16 dequantize and accumulate) against torch in fp32."""
    f = tvmfast.bind(gemv)
    g = torch.Generator().manual_seed(torch.seed() % 2**31)
    for _ in range(3):
        args = kernels.seed_gemv_args(device="cuda", generator=g)
        out_rt = args[-1].clone()
        f(*args)
        gemv(*args[:4], out_rt)
        assert seed_relative_error(args[-1], args) < 1e-2
        assert torch.equal(args[-1], out_rt)


def test_seed_kernel_frozen_prepared_and_graph_replay(gemv):
    """Weights, scale and zeros frozen; a new activation per call; then captured and replayed."""
    f = tvmfast.bind(gemv, num_args=5)
    g = torch.Generator().manual_seed(torch.seed() % 2**31)
    x, w, scale, zeros, out = kernels.seed_gemv_args(device="cuda", generator=g)
    frozen = f.freeze({1: w, 2: scale, 3: zeros})
    prepared = f.prepare(x, w, scale, zeros, out)
    for call in (lambda: frozen(x, out), prepared):
        x.copy_(torch.randn(x.shape, generator=g).half())
        out.fill_(float("nan"))
        call()
        assert seed_relative_error(out, [x, w, scale, zeros]) < 1e-2
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        frozen(x, out)
    for _ in range(2):
        x.copy_(torch.randn(x.shape, generator=g).half())
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert seed_relative_error(out, [x, w, scale, zeros]) < 1e-2


def test_kernel_runs_on_the_current_torch_stream(add_big):
    """A long torch op on stream s writes the input; the TVM kernel on s reads it with no
    synchronization; then torch reads the TVM output on s. Wrong stream = wrong result."""
    f = tvmfast.bind(add_big)
    n = 65536
    for _ in range(3):
        a = torch.zeros(n, device="cuda")
        b = torch.randn(n, device="cuda")
        out = torch.full((n,), float("nan"), device="cuda")
        new_a = torch.randn(n, device="cuda")
        torch.cuda.synchronize()
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            torch.cuda._sleep(50_000_000)      # ~tens of ms of GPU time on s
            a.copy_(new_a)                     # ordered after the sleep, on s
            f(a, b, out)                       # must run on s, after the copy
            result = out * 2                   # torch reads TVM's output on s
        s.synchronize()
        assert torch.equal(out, new_a + b)
        assert torch.equal(result, (new_a + b) * 2)


def test_native_torch_op_runs_on_the_current_torch_stream_without_python(add_big):
    """as_torch_op's C kernel on the GPU: torch's current stream (the same ordering test as above), the
    same result, and no tvmfast Python frame in the call."""
    from tvmfast import _core

    if not _core._native_op_state().startswith("on"):
        pytest.skip(f"native torch ops are off here: {_core._native_op_state()}")
    op = tvmfast.bind(add_big, num_args=3).as_torch_op("tvmfast_test_gpu::add_native", mutates_args=(2,))
    n = 65536
    package = os.path.dirname(os.path.abspath(tvmfast.__file__))
    frames = []

    def profiler(frame, event, arg):
        name = frame.f_code.co_filename
        if event == "call" and (name.startswith(package) or name.startswith("<tvmfast")):
            frames.append(name)

    for _ in range(3):
        a = torch.zeros(n, device="cuda")
        b = torch.randn(n, device="cuda")
        out = torch.full((n,), float("nan"), device="cuda")
        new_a = torch.randn(n, device="cuda")
        torch.cuda.synchronize()
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            torch.cuda._sleep(50_000_000)
            a.copy_(new_a)
            sys.setprofile(profiler)
            op(a, b, out)                      # must run on s, after the copy
            sys.setprofile(None)
            result = out * 2
        s.synchronize()
        assert torch.equal(out, new_a + b)
        assert torch.equal(result, (new_a + b) * 2)
    assert frames == []


def test_functional_torch_op_allocates_on_the_inputs_device_and_stream(add_big):
    """A functional op (outputs=) on the GPU: its output is allocated on the input's device, the call
    runs on torch's current stream (after work queued there), eagerly and under torch.compile, and
    with native ops on the C kernel takes it (allocating through torch's stable C ABI)."""
    from tvmfast import _core, alloc

    n = 65536
    x = torch.randn(n, device="cuda")
    op = tvmfast.bind(add_big, num_args=3).as_torch_op(
        "tvmfast_test_gpu::add_functional", example_args=(x, x, torch.empty_like(x)), outputs={2: alloc.like(0)})
    for _ in range(3):
        a = torch.zeros(n, device="cuda")
        b = torch.randn(n, device="cuda")
        new_a = torch.randn(n, device="cuda")
        torch.cuda.synchronize()
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            torch.cuda._sleep(50_000_000)
            a.copy_(new_a)
            out = op(a, b)                     # must run on s, after the copy
            if _core._native_op_state().startswith("on"):
                assert _core._native_op_last_fallback() == "none"
            result = out * 2
        s.synchronize()
        assert out.device == a.device and out.dtype == a.dtype and out.is_contiguous()
        assert torch.equal(out, new_a + b)
        assert torch.equal(result, (new_a + b) * 2)
    compiled = torch.compile(lambda u, v: op(u, v) * 3, fullgraph=True)
    a, b = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    assert torch.equal(compiled(a, b), (a + b) * 3)


def test_env_stream_restored_also_after_a_failing_call(add_big):
    f = tvmfast.bind(add_big)
    before = env_stream()
    s = torch.cuda.Stream()
    a = torch.randn(65536, device="cuda")
    with torch.cuda.stream(s):
        f(a, a, torch.empty_like(a))
        assert env_stream() == before
        with pytest.raises(ValueError, match="shape"):
            f(a, a, torch.empty(10, device="cuda"))
        assert env_stream() == before
    torch.cuda.synchronize()


def test_cuda_graph_capture_and_replay(add_big):
    f = tvmfast.bind(add_big)
    n = 65536
    a, b = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    out = torch.full((n,), float("nan"), device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):             # warm-up outside capture, as torch advises
        f(a, b, out)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        f(a, b, out)
    for _ in range(3):
        a.copy_(torch.randn(n, device="cuda"))
        b.copy_(torch.randn(n, device="cuda"))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, a + b)


def test_cuda_graph_chain_of_16_prepared_calls(add_tiny):
    """x_{i+1} = x_i + y, 16 times, captured from prepared calls."""
    f = tvmfast.bind(add_tiny)
    xs = [torch.zeros(1024, device="cuda") for _ in range(17)]
    y = torch.randn(1024, device="cuda")
    chain = [f.prepare(xs[i], y, xs[i + 1]) for i in range(16)]
    for p in chain:
        p()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for p in chain:
            p()
    for _ in range(2):
        xs[0].copy_(torch.randn(1024, device="cuda"))
        for x in xs[1:]:
            x.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(xs[16], xs[0] + 16 * y)


def test_mixed_devices_are_refused(add_big):
    f = tvmfast.bind(add_big)
    g = tvmfast.bind(add_big, num_args=3).freeze({0: torch.randn(65536, device="cuda")})
    gpu = torch.randn(65536, device="cuda")
    cpu = torch.randn(65536)
    with pytest.raises(ValueError, match=r"argument #1\b.*cpu.*argument #0 is on cuda:0"):
        f(gpu, cpu, gpu)
    with pytest.raises(ValueError, match=r"argument #2\b.*cpu"):
        g(gpu, cpu)
    with pytest.raises(ValueError, match=r"argument #1\b.*cpu.*argument #0 is on cuda:0"):
        f.prepare(gpu, cpu, gpu)   # refused when prepared, not at each call
    out = torch.full_like(gpu, float("nan"))
    f(gpu, gpu, out)  # still works
    assert torch.equal(out, gpu + gpu)


def test_call_ptrs_on_the_gpu_uses_the_current_stream(add_big):
    f = tvmfast.bind(add_big)
    n = 65536
    a, b, out = torch.randn(n, device="cuda"), torch.randn(n, device="cuda"), torch.empty(n, device="cuda")
    p = f.prepare(a, b, out)
    a2 = torch.zeros(n, device="cuda")
    new_a = torch.randn(n, device="cuda")
    b2 = torch.randn(n, device="cuda")
    out2 = torch.full((n,), float("nan"), device="cuda")
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        torch.cuda._sleep(50_000_000)
        a2.copy_(new_a)
        p.call_ptrs(a2.data_ptr(), b2.data_ptr(), out2.data_ptr())
    s.synchronize()
    assert torch.equal(out2, new_a + b2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_second_device_and_its_stream(add_big):
    f = tvmfast.bind(add_big)
    n = 65536
    with torch.cuda.device(1):
        a = torch.zeros(n, device="cuda:1")
        b = torch.randn(n, device="cuda:1")
        new_a = torch.randn(n, device="cuda:1")
        out = torch.full((n,), float("nan"), device="cuda:1")
        s = torch.cuda.Stream(device=1)
        with torch.cuda.stream(s):
            torch.cuda._sleep(50_000_000)
            a.copy_(new_a)
            f(a, b, out)
        s.synchronize()
        assert torch.equal(out, new_a + b)
    with pytest.raises(ValueError, match=r"argument #1\b.*cuda:0.*argument #0 is on cuda:1"):
        f(torch.randn(n, device="cuda:1"), torch.randn(n, device="cuda:0"), torch.empty(n, device="cuda:1"))


def test_memory_flat_over_many_calls(add_tiny):
    f = tvmfast.bind(add_tiny)
    a, b, out = (torch.randn(1024, device="cuda") for _ in range(3))
    for _ in range(1000):
        f(a, b, out)
    torch.cuda.synchronize()
    gc.collect()
    mem0 = torch.cuda.memory_allocated()
    with open("/proc/self/statm") as fh:
        rss0 = int(fh.read().split()[1]) * 4096
    for i in range(100_000):
        f(a, b, out)
        if i % 1000 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    gc.collect()
    with open("/proc/self/statm") as fh:
        rss1 = int(fh.read().split()[1]) * 4096
    assert torch.cuda.memory_allocated() == mem0
    assert rss1 - rss0 < 2 << 20


def test_non_torch_producers_leave_tvm_stream_alone(add_big, monkeypatch):
    """tvm_ffi tensors carry no stream of their own: TVM's stream is used and not changed,
    and torch is not asked for one (a Python call per GPU call that rt_mod does not make)."""
    from tvmfast import _torch

    def no_stream_query(*args):
        raise AssertionError("torch's stream was queried for tvm_ffi tensors")

    monkeypatch.setattr(_torch, "current_stream", no_stream_query)
    f = tvmfast.bind(add_big)
    a, b = torch.randn(65536, device="cuda"), torch.randn(65536, device="cuda")
    out = torch.full((65536,), float("nan"), device="cuda")
    before = env_stream()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        f(tvm_ffi.from_dlpack(a), tvm_ffi.from_dlpack(b), tvm_ffi.from_dlpack(out))
        assert env_stream() == before
    torch.cuda.synchronize()
    assert torch.equal(out, a + b)


def test_stream_hook_for_torch_without_exchange_api():
    from tvmfast._torch import current_stream

    s = torch.cuda.Stream()
    t = torch.randn(4, device="cuda")
    with torch.cuda.stream(s):
        assert current_stream(t, KDL_CUDA, 0) == s.cuda_stream
    assert current_stream(tvm_ffi.from_dlpack(t), KDL_CUDA, 0) is None
