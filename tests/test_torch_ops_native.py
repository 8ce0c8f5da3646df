"""as_torch_op's native kernel (a C kernel per op, registered through torch's stable C ABI): an eager op
call, a compiled graph and an AOTInductor package reach the TVM function without a tvmfast Python frame,
with the same results, version counters and errors as the bound function; tensors the C path does not take
(autograd metadata: requires_grad, views; inference tensors written outside inference mode) go through the
op's Python kernel with the same tensors.  Every result is compared with torch on fresh random inputs.
(The op itself, as a torch user meets it: test_torch_ops.py.)"""
import itertools
import subprocess
import sys
import threading
import weakref

import pytest

torch = pytest.importorskip("torch")

import tvm_ffi  # noqa: E402

import tvmfast  # noqa: E402
from support import tvm_kernels as kernels  # noqa: E402
from support.helpers import needs_tvm  # noqa: E402
from support.torch_ops import build_relax_vm, child_env_with_support, tvmfast_frames  # noqa: E402
from tvmfast import _core  # noqa: E402

NS = "tvmfast_test_native"
_IDS = itertools.count()

pytestmark = needs_tvm


def fresh_name(stem):
    return f"{NS}::{stem}{next(_IDS)}"


@pytest.fixture(scope="module")
def native():
    """Native ops are on wherever torch exports the stable C ABI (torch >= 2.9 does); the suite checks
    them here, and says why not elsewhere."""
    state = _core._native_op_state()
    if not state.startswith("on"):
        pytest.skip(f"native torch ops are off here: {state}")
    return state


@pytest.fixture(scope="module")
def add_f():
    return tvmfast.bind(kernels.build_add(128), num_args=3)


@pytest.fixture(scope="module")
def relax_vm():
    return build_relax_vm()


def test_state_is_reported(native):
    out = subprocess.run([sys.executable, "-m", "tvmfast"], capture_output=True, text=True, check=True).stdout
    assert "as_torch_op" in out and "C kernels through torch's stable C ABI" in out, out


def test_out_variant_op_runs_in_c(native, add_f, gen):
    op = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = torch.full((128,), float("nan"))
    version = out._version
    assert tvmfast_frames(lambda: op(a, b, out)) == []
    torch.testing.assert_close(out, a + b)
    assert out._version == version + 1  # as torch's in-place ops bump it
    assert a._version == 0 and b._version == 0


def test_returning_ops_run_in_c(native, relax_vm, gen):
    one = tvmfast.bind(relax_vm, "mm_relu").as_torch_op(
        fresh_name("mm_relu"), returns=lambda x, w: x.new_empty(x.shape[0], w.shape[1]))
    spec = lambda x, w: x.new_empty(x.shape[0], w.shape[1])  # noqa: E731
    two = tvmfast.bind(relax_vm, "both").as_torch_op(fresh_name("both"), returns=[spec, spec])
    x, w = torch.randn(5, 8, generator=gen), torch.randn(8, 3, generator=gen)
    got = []
    assert tvmfast_frames(lambda: got.append(one(x, w))) == []
    torch.testing.assert_close(got[0], torch.relu(x @ w))
    assert tvmfast_frames(lambda: got.append(two(x, w))) == []
    y, z = got[1]
    torch.testing.assert_close(y, x @ w)
    torch.testing.assert_close(z, torch.relu(x @ w))


def test_errors_are_the_bound_functions(native, add_f, gen):
    op = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))
    a = torch.randn(128, generator=gen)
    for args in ((a.double(), a.double(), torch.empty(128, dtype=torch.float64)),  # TVM's dtype check
                 (a, a, torch.empty(64))):  # TVM's shape check
        with pytest.raises(Exception) as direct:
            add_f(*args)
        with pytest.raises(Exception) as via_op:
            op(*args)
        assert type(via_op.value) is type(direct.value)
        assert str(via_op.value) == str(direct.value)


def test_what_the_c_path_does_not_take_goes_through_the_python_kernel(native, add_f, gen):
    op = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))
    base = torch.randn(256, generator=gen)
    a, b = base[64:192], torch.randn(128, generator=gen)  # a view: it carries autograd metadata
    out = torch.empty(128)
    op(a, b, out)
    torch.testing.assert_close(out, a + b)
    p = torch.randn(128, generator=gen, requires_grad=True)
    with pytest.raises(RuntimeError, match="has no autograd formula"):
        op(p, b, out)
    with torch.no_grad():
        op(p, b, out)
    torch.testing.assert_close(out, p.detach() + b)
    with torch.inference_mode():
        x, y, z = torch.randn(128), torch.randn(128), torch.empty(128)
        op(x, y, z)  # inference tensors inside inference mode: the C path, nothing to bump
        torch.testing.assert_close(z, x + y)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        op(x, y, z)


def test_a_returning_function_without_returns_raises(native, gen):
    f = tvmfast.bind(tvm_ffi.convert(lambda x, y: x), num_args=2)  # returns its first argument
    name = fresh_name("no_returns")
    op = f.as_torch_op(name, mutates_args=(1,))
    x, y = torch.randn(4, generator=gen), torch.empty(4)
    with pytest.raises(RuntimeError, match=r"without returns=.*pass as_torch_op\(\.\.\., returns=\.\.\.\)"):
        op(x, y)
    compiled = torch.compile(lambda x, y: op(x, y), backend="aot_eager", fullgraph=True)
    with pytest.raises(RuntimeError, match="without returns="):
        compiled(x, y)


def test_reregistration_swaps_the_function_in_place(native, gen):
    name = fresh_name("swap")
    a, b = torch.randn(16, generator=gen), torch.empty(16)

    def writer(fn):
        def write(x, y):
            torch.from_dlpack(y).copy_(fn(torch.from_dlpack(x)))
        return tvmfast.bind(tvm_ffi.convert(write), num_args=2)

    plus, times = writer(lambda x: x + 1), writer(lambda x: x * 3)
    op = plus.as_torch_op(name, mutates_args=(1,))
    op(a, b)
    torch.testing.assert_close(b, a + 1)
    op2 = times.as_torch_op(name, mutates_args=(1,))
    assert op2 is op
    op(a, b)
    torch.testing.assert_close(b, a * 3)


def test_a_kept_tensor_stays_valid(native, gen):
    kept = []

    def keep(x, y):
        kept.append(x)

    op = tvmfast.bind(tvm_ffi.convert(keep), num_args=2).as_torch_op(fresh_name("keep"), mutates_args=(1,))
    x = torch.randn(64, generator=gen)
    expected = x.clone()
    op(x, torch.empty(1))
    del x
    torch.testing.assert_close(torch.from_dlpack(kept[0]), expected)
    kept.clear()  # the last reference: the torch handle it owns is released (no GIL needed)


def use_counts(*tensors):
    """torch's reference counts of the tensors (a reference nobody released shows here)."""
    return [t._use_count() for t in tensors]


def test_argument_handles_are_released_when_the_call_returns(native, add_f, gen):
    """An eager call from Python releases torch's handles to its tensor arguments once the dispatcher is
    back under the GIL (no GIL hand-off per tensor): after the call, succeeded or failed, no reference
    is left, and the tensors are freed with their last Python reference."""
    op = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = torch.empty(128)
    functional = add_f.as_torch_op(fresh_name("add_new"), example_args=(a, b, out),
                                   outputs={2: tvmfast.alloc.like(0)})
    before = use_counts(a, b, out)
    op(a, b, out)
    assert _core._native_op_last_fallback() == "none"
    torch.testing.assert_close(out, a + b)
    assert use_counts(a, b, out) == before
    got = functional(a, b)
    assert _core._native_op_last_fallback() == "none"
    torch.testing.assert_close(got, a + b)
    assert use_counts(a, b, got) == before[:2] + [1]
    with pytest.raises(Exception, match="shape"):
        op(a, b, torch.empty(64))  # TVM's shape check, after the C path took the handles
    assert _core._native_op_last_fallback() == "none"
    assert use_counts(a, b) == before[:2]
    refs = [weakref.ref(t) for t in (a, b, out, got)]
    del a, b, out, got
    assert [r() for r in refs] == [None] * 4


def test_nested_op_calls_release_their_handles(native, add_f, gen):
    """An op whose function calls ops from Python, nested deeper than the handles put off per thread
    (64): every level computes, and every handle is released by the time the outermost call returns."""
    inner = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))
    levels = []

    def recurse(x, y, out, n):
        levels.append(n)
        tx, ty, tout = (torch.from_dlpack(t) for t in (x, y, out))
        if n == 0:
            inner(tx, ty, tout)
        else:
            outer(tx, ty, tout, n - 1)

    a, b, out = torch.randn(128, generator=gen), torch.randn(128, generator=gen), torch.empty(128)
    outer = tvmfast.bind(tvm_ffi.convert(recurse), num_args=4).as_torch_op(
        fresh_name("recurse"), mutates_args=(2,), example_args=(a, b, out, 0))
    before = use_counts(a, b, out)
    outer(a, b, out, 40)
    assert levels == list(range(40, -1, -1))
    torch.testing.assert_close(out, a + b)
    assert use_counts(a, b, out) == before
    refs = [weakref.ref(t) for t in (a, b, out)]
    del a, b, out
    assert [r() for r in refs] == [None] * 3


def test_threads(native, add_f, gen):
    op = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))
    inputs = [(torch.randn(128, generator=gen), torch.randn(128, generator=gen)) for _ in range(8)]
    errors = []

    def worker(a, b):
        out = torch.empty(128)
        try:
            for _ in range(300):
                op(a, b, out)
                if not torch.equal(out, a + b):
                    errors.append("wrong result")
                    return
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=ab) for ab in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_compiled_graph_calls_the_c_kernel(native, add_f, gen):
    op = add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))

    def step(x, w):
        out = torch.empty_like(x)
        op(x, w, out)
        return out * 2

    compiled = torch.compile(step, backend="inductor", fullgraph=True)
    x, w = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    torch.testing.assert_close(compiled(x, w), (x + w) * 2)
    x = torch.randn(128, generator=gen)
    got = []
    frames = tvmfast_frames(lambda: got.append(compiled(x, w)))
    torch.testing.assert_close(got[0], (x + w) * 2)
    assert frames == []


AOTI_RUN = '''
import sys
import torch
import tvmfast
from support.torch_ops import tvmfast_frames

folder = sys.argv[1]
op = tvmfast.bind(folder + "/add.so", num_args=3, alignment=1).as_torch_op("{name}", mutates_args=(2,))
data = torch.load(folder + "/data.pt")
model = torch._inductor.aoti_load_package(folder + "/model.pt2")
model(data["x"])
got = []
frames = tvmfast_frames(lambda: got.append(model(data["x"])))
got = got[0]
verdict = "right" if torch.equal(got, data["expected"]) else "WRONG"
print("RESULT", verdict, len(frames), frames[:3], tvmfast._core._native_op_last_fallback())
'''


@pytest.mark.slow
def test_aoti_package_runs_without_tvmfast_python_frames(native, tmp_path, gen):
    """An AOTInductor package calling the op: a fresh process runs the model with no tvmfast Python frame
    (the kernel takes any alignment: AOTInductor's constants are only 16-byte aligned)."""
    name = fresh_name("aoti")
    kernels.build_add(128, offset_factor=1).export_library(str(tmp_path / "add.so"))
    op = tvmfast.bind(str(tmp_path / "add.so"), num_args=3, alignment=1).as_torch_op(name, mutates_args=(2,))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.randn(128, generator=gen))

        def forward(self, x):
            out = torch.empty_like(x)
            op(x, self.w, out)
            return out * 2

    model = Model()
    x = torch.randn(128, generator=gen)
    torch.testing.assert_close(model(x), (x + model.w) * 2)
    torch._inductor.aoti_compile_and_package(torch.export.export(model, (x,)), package_path=str(tmp_path / "model.pt2"))
    torch.save({"x": x, "expected": model(x)}, tmp_path / "data.pt")
    script = tmp_path / "run.py"
    script.write_text(AOTI_RUN.format(name=name))
    env = child_env_with_support()
    res = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert res.returncode == 0 and line is not None, res.stderr[-3000:]
    assert line.split()[1:3] == ["right", "0"], line
