"""as_torch_op / tvmfast.torch_op.make_torch_op: the torch custom op around a bound function, as a torch user
meets it: eager and under torch.compile (aot_eager, inductor), scalar arguments, autograd (never a silently
wrong gradient), version counters and inference tensors, a returning variant (Relax VM), SymInt, inferred
arity, argument errors, re-registration, zero-size dimensions, meta/sparse tensors and vmap.  Every result is
compared with torch on fresh random inputs.  (The op's C kernel: test_torch_ops_native.py; misaligned tensors
and AOTInductor constants: test_aligned_copies.py.)"""
import itertools
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.autograd.forward_ad as fwAD  # noqa: E402

import tvmfast  # noqa: E402
from support import tvm_kernels as kernels  # noqa: E402
from support.helpers import nan_like  # noqa: E402
from support.torch_ops import build_relax_vm  # noqa: E402
from tvmfast.torch_op import make_torch_op  # noqa: E402

NS = "tvmfast_test_op"
_IDS = itertools.count()


def fresh_name(stem):
    """A new op name: an op's definition lives as long as the process."""
    return f"{NS}::{stem}{next(_IDS)}"


SUB_SRC = '''
@T.prim_func
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({"global_symbol": "main", "tir.noalias": True})
    A = T.match_buffer(a, (128,), "float32")
    B = T.match_buffer(b, (128,), "float32")
    C = T.match_buffer(c, (128,), "float32")
    for i in range(128):
        C[i] = A[i] - B[i]
'''

ADD_2D_SRC = '''
@T.prim_func
def main(a: T.handle, b: T.handle, c: T.handle):
    T.func_attr({"global_symbol": "main", "tir.noalias": True})
    m = T.int64()
    n = T.int64()
    A = T.match_buffer(a, (m, n), "float32")
    B = T.match_buffer(b, (m, n), "float32")
    C = T.match_buffer(c, (m, n), "float32")
    for i, j in T.grid(m, n):
        C[i, j] = A[i, j] + B[i, j]
'''


@pytest.fixture(scope="module")
def add_f():
    return tvmfast.bind(kernels.build_add(128), num_args=3)


@pytest.fixture(scope="module")
def add_op(add_f):
    return add_f.as_torch_op(fresh_name("add"), mutates_args=(2,))


@pytest.fixture(scope="module")
def relax_vm():
    return build_relax_vm()


def mm_relu_out(x, w):
    return x.new_empty(x.shape[0], w.shape[1])


def mm_relu_op(relax_vm, backward=False):
    f = tvmfast.bind(relax_vm, "mm_relu")
    name = fresh_name("mm_relu")
    op = f.as_torch_op(name, returns=mm_relu_out)  # the VM knows the arity: two tensors
    if backward:
        torch.library.register_autograd(name, mm_relu_backward, setup_context=mm_relu_setup_context)
    return op


def mm_relu_setup_context(ctx, inputs, output):
    x, w = inputs
    ctx.save_for_backward(x, w, output)


def mm_relu_backward(ctx, grad):
    x, w, y = ctx.saved_tensors
    grad_y = grad * (y > 0)
    return grad_y @ w.T, x.T @ grad_y


class GraphCounter:
    """A torch.compile backend that counts the graphs it is given."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


# ---------------------------------------------------------------------------
# 1. Autograd: differentiable use raises, naming the op, unless a backward is registered
# ---------------------------------------------------------------------------
def test_differentiable_use_raises_and_writes_nothing(add_op, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    x = a.clone().requires_grad_()
    out = nan_like(a)
    with pytest.raises(RuntimeError, match=rf"{add_op._name}.*argument #0 requires grad.*no_grad"):
        add_op(x, b, out)
    assert out.isnan().all()  # refused before the kernel ran
    leaf = nan_like(a).requires_grad_()
    with pytest.raises(RuntimeError, match=rf"{add_op._name}.*argument #2 requires grad"):
        add_op(a, b, leaf)  # torch's in-place ops refuse writing such a leaf too
    assert leaf.isnan().all() and leaf.grad is None and leaf.grad_fn is None
    # Outside grad mode, or on detached tensors, it is an ordinary call.
    with torch.no_grad():
        add_op(x, b, out)
    assert torch.equal(out, a + b)
    out2 = nan_like(a)
    add_op(x.detach(), b, out2)
    assert torch.equal(out2, a + b)


def test_functorch_transforms_and_forward_ad_raise(add_op, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)

    def loss(x):
        add_op(x, b, out)
        return out.sum()

    with pytest.raises(RuntimeError, match=rf"{add_op._name} has no autograd formula"):
        torch.func.grad(loss)(a)
    with pytest.raises(RuntimeError, match=rf"{add_op._name} has no forward-mode autograd formula"):
        torch.func.jvp(lambda x: (add_op(x, b, out), out * 1)[1], (a,), (torch.ones_like(a),))
    with fwAD.dual_level():
        dual = fwAD.make_dual(a, torch.ones_like(a))
        with pytest.raises(RuntimeError, match=r"argument #0 is a dual tensor"):
            add_op(dual, b, out)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_differentiable_use_raises(add_op, gen, backend):
    torch._dynamo.reset()

    def model(x, y):
        out = torch.empty_like(x)
        add_op(x * 2, y, out)
        return out.sum()

    compiled = torch.compile(model, backend=backend, fullgraph=True)
    x = torch.randn(128, generator=gen, requires_grad=True)
    with pytest.raises(Exception, match=rf"{add_op._name} has no autograd formula"):
        compiled(x, torch.randn(128, generator=gen))
    # without grad the same function compiles and is right
    xd = x.detach()
    y = torch.randn(128, generator=gen)
    torch.testing.assert_close(compiled(xd, y), (2 * xd + y).sum())


def test_returning_op_without_backward_raises(relax_vm, gen):
    op = mm_relu_op(relax_vm)
    x, w = torch.randn(5, 8, generator=gen), torch.randn(8, 3, generator=gen)
    with pytest.raises(RuntimeError, match=rf"{op._name} has no autograd formula.*torch.library.register_autograd"):
        op(x.requires_grad_(), w)


def test_returning_op_with_register_autograd_gives_torchs_gradients(relax_vm, gen):
    op = mm_relu_op(relax_vm, backward=True)
    compiled = torch.compile(lambda x, w: (op(x, w) * 3).sum(), backend="aot_eager", fullgraph=True)
    for run in [lambda x, w: (op(x, w) * 3).sum(), compiled]:
        for n in (3, 6):
            x0, w0 = torch.randn(n, 8, generator=gen), torch.randn(8, 3, generator=gen)
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            xr, wr = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            run(x, w).backward()
            (torch.relu(xr @ wr) * 3).sum().backward()
            torch.testing.assert_close(x.grad, xr.grad)
            torch.testing.assert_close(w.grad, wr.grad)
    x, w = torch.randn(4, 8, generator=gen), torch.randn(8, 3, generator=gen)
    result = torch.library.opcheck(op, (x.requires_grad_(), w.requires_grad_()))
    assert set(result.values()) == {"SUCCESS"}, result


# ---------------------------------------------------------------------------
# 2. Version counters and inference tensors, as torch's own in-place ops
# ---------------------------------------------------------------------------
def test_version_counter_moves_as_torchs_out_variant(add_op, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out, ref = nan_like(a), nan_like(a)
    for context in [torch.enable_grad, torch.no_grad, torch.inference_mode]:
        with context():
            v_out, v_ref, v_a = out._version, ref._version, a._version
            add_op(a, b, out)
            torch.add(a, b, out=ref)
            assert out._version - v_out == ref._version - v_ref == 1
            assert a._version == v_a  # only written arguments move
    assert torch.equal(out, ref)


def test_overwriting_a_saved_tensor_is_detected_by_autograd(add_op, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    for write in [lambda s: add_op(a, b, s), lambda s: torch.add(a, b, out=s)]:
        w = torch.randn(128, generator=gen, requires_grad=True)
        saved = torch.randn(128, generator=gen)
        loss = (w * saved).sum()  # saves `saved` for backward
        write(saved)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_inference_tensors_as_torch_treats_them(add_op, gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    with torch.inference_mode():
        inf_out, inf_ref = nan_like(a), nan_like(a)
        inf_a = a.clone()
        add_op(a, b, inf_out)  # inside inference mode: allowed, as for torch
        add_op(inf_a, b, inf_ref)
    assert torch.equal(inf_out, a + b) and torch.equal(inf_ref, a + b)
    for args in [(a, b, inf_out), (inf_a, inf_a, inf_out)]:
        with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode") as ours:
            add_op(*args)
        assert add_op._name in str(ours.value) and "argument #2" in str(ours.value)
        with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
            torch.add(*args[:2], out=args[2])
    # Reading inference tensors outside inference mode is fine, as for torch.
    out = nan_like(a)
    add_op(inf_a, b, out)
    assert torch.equal(out, a + b)


# ---------------------------------------------------------------------------
# 3. The returning variant: a Relax VM function as a functional op
# ---------------------------------------------------------------------------
def test_returning_op_eager_opcheck_and_compiled(relax_vm, gen):
    op = mm_relu_op(relax_vm)
    assert str(op._schema).endswith("-> Tensor")
    x, w = torch.randn(4, 8, generator=gen), torch.randn(8, 3, generator=gen)
    torch.testing.assert_close(op(x, w), torch.relu(x @ w))
    result = torch.library.opcheck(op, (x, w))
    assert set(result.values()) == {"SUCCESS"}, result
    for backend in ["aot_eager", "inductor"]:
        torch._dynamo.reset()
        compiled = torch.compile(lambda x, w: op(x * 2, w) + 1, backend=backend, fullgraph=True)
        for n in (4, 5, 9):
            x = torch.randn(n, 8, generator=gen)
            torch.testing.assert_close(compiled(x, w), torch.relu(2 * x @ w) + 1)


def test_returning_op_several_outputs_and_shape_dtype_spec(relax_vm, gen):
    f = tvmfast.bind(relax_vm, "both")
    spec = lambda x, w: ((x.shape[0], w.shape[1]), x.dtype)  # noqa: E731
    op = f.as_torch_op(fresh_name("both"), example_args=[torch.randn(2, 8), torch.randn(8, 3)],
                       returns=[spec, spec])
    assert str(op._schema).endswith("-> (Tensor, Tensor)")
    x, w = torch.randn(6, 8, generator=gen), torch.randn(8, 3, generator=gen)
    y, z = op(x, w)
    torch.testing.assert_close(y, x @ w)
    torch.testing.assert_close(z, torch.relu(x @ w))
    result = torch.library.opcheck(op, (x, w))
    assert set(result.values()) == {"SUCCESS"}, result
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, w: op(x, w)[0] - op(x, w)[1], backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, w), x @ w - torch.relu(x @ w))


def test_returns_spec_errors(relax_vm):
    f = tvmfast.bind(relax_vm, "mm_relu")
    args = [torch.randn(2, 8), torch.randn(8, 3)]
    with pytest.raises(TypeError, match="returns= takes a callable"):
        f.as_torch_op(fresh_name("bad"), returns=[])
    with pytest.raises(TypeError, match="returns= takes a callable"):
        f.as_torch_op(fresh_name("bad"), returns="Tensor")
    op = make_torch_op(f, fresh_name("badspec"), example_args=args, returns=lambda x, w: x.shape)
    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"output spec #0 \(returns=\) gave a Size"):
        torch.compile(op, backend="aot_eager", fullgraph=True)(*args)


# ---------------------------------------------------------------------------
# 4. SymInt: one compiled graph across int values
# ---------------------------------------------------------------------------
def test_int_arguments_are_symint(gen):
    f = tvmfast.bind(kernels.build_scale(64))
    a = torch.randn(64, generator=gen)
    op = f.as_torch_op(fresh_name("scale"), mutates_args=(1,), example_args=[a, a, 1.0, 1])
    assert "SymInt a3" in str(op._schema) and "float a2" in str(op._schema)
    result = torch.library.opcheck(op, (a, nan_like(a), 0.5, 3))
    assert set(result.values()) == {"SUCCESS"}, result

    def with_op(x, shift):
        out = torch.empty_like(x)
        op(x, out, 2.0, shift)
        return out * 1

    def reference(x, shift):
        return x * 2.0 + shift

    for dynamic in [True, None]:
        counts = []
        for fn in [with_op, reference]:
            torch._dynamo.reset()
            counter = GraphCounter()
            compiled = torch.compile(fn, backend=counter, fullgraph=True, dynamic=dynamic)
            for shift in [1, 2, 3, -4, 5]:
                torch.testing.assert_close(compiled(a, shift), a * 2 + shift)
            counts.append(counter.graphs)
        # As many graphs as plain torch: one with dynamic=True (an int schema gave five).
        assert counts[0] == counts[1], (dynamic, counts)
        if dynamic:
            assert counts[0] == 1


# ---------------------------------------------------------------------------
# 5. Arity: known from bind(num_args=), example_args or a first call; else a clear error
# ---------------------------------------------------------------------------
def test_arity_from_a_first_call(gen):
    f = tvmfast.bind(kernels.build_add(128))
    name = fresh_name("learned")
    with pytest.raises(ValueError, match=r"needs bind\(\.\.\., num_args=N\), example_args=\[\.\.\.\].*first"):
        f.as_torch_op(name, mutates_args=(2,))
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    f(a, b, nan_like(a))
    op = f.as_torch_op(name, mutates_args=(2,))
    assert str(op._schema) == f"{name}(Tensor a0, Tensor a1, Tensor(a!) a2) -> ()"
    out = nan_like(a)
    op(a, b, out)
    assert torch.equal(out, a + b)


def test_arity_of_a_relax_vm_function(relax_vm):
    op = mm_relu_op(relax_vm)  # no num_args, no example_args, never called
    assert str(op._schema) == f"{op._name}(Tensor a0, Tensor a1) -> Tensor"


def test_argument_errors(add_f):
    with pytest.raises(ValueError, match="4 example arguments, but the function was bound with num_args=3"):
        add_f.as_torch_op(fresh_name("x"), example_args=[torch.zeros(1)] * 4)
    with pytest.raises(ValueError, match="mutates_args names a position twice"):
        add_f.as_torch_op(fresh_name("x"), mutates_args=(2, 2))
    with pytest.raises(TypeError, match="mutates_args must be a sequence"):
        add_f.as_torch_op(fresh_name("x"), mutates_args=2)
    # A position given by name: the message says positions are ints, with an example.
    with pytest.raises(ValueError, match=r"position 'C' is not a tensor argument: positions are ints .*"
                                         r"mutates_args=\(2,\)"):
        add_f.as_torch_op(fresh_name("x"), mutates_args=("C",))
    with pytest.raises(ValueError, match="namespace::name"):
        add_f.as_torch_op("a::b::c")


# ---------------------------------------------------------------------------
# 6. Re-registration
# ---------------------------------------------------------------------------
def test_reregistration_with_the_same_schema_replaces_the_kernel(add_f, gen):
    name = fresh_name("rebuilt")
    op = add_f.as_torch_op(name, mutates_args=(2,))
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out = nan_like(a)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, y: (op(x, y, out), out * 1)[1], backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(a, b), a + b)
    sub = tvmfast.bind(kernels.build_tvmscript(SUB_SRC, "llvm"), num_args=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "overriding a previously registered kernel"
        op2 = sub.as_torch_op(name, mutates_args=(2,))
    assert op2 is op
    op(a, b, out)
    assert torch.equal(out, a - b)
    torch.testing.assert_close(compiled(a, b), a - b)  # the compiled graph calls the op: the new kernel
    result = torch.library.opcheck(op, (a, b, nan_like(a)))
    assert set(result.values()) == {"SUCCESS"}, result


def test_reregistration_with_another_schema_or_a_foreign_name_errors(add_f):
    name = fresh_name("fixed")
    add_f.as_torch_op(name, mutates_args=(2,))
    with pytest.raises(ValueError, match=r"already registered with the schema .*Tensor\(a!\) a2.*needs .*"
                                         r"Tensor\(a!\) a1.*another name"):
        add_f.as_torch_op(name, mutates_args=(1,))
    lib = torch.library.Library(NS, "FRAGMENT")
    foreign = fresh_name("foreign")
    lib.define(foreign.split("::")[1] + "(Tensor x) -> Tensor")
    with pytest.raises(ValueError, match="already exists and was not registered by tvmfast"):
        add_f.as_torch_op(foreign, mutates_args=(2,))


# ---------------------------------------------------------------------------
# 7. Zero-size dimensions
# ---------------------------------------------------------------------------
def compact_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


@pytest.mark.parametrize("shape", [(4, 3), (0, 3), (4, 0), (0, 0)])
def test_zero_size_dimensions(shape, gen):
    f = tvmfast.bind(kernels.build_tvmscript(ADD_2D_SRC, "llvm"), num_args=3)
    op = f.as_torch_op(fresh_name("add2d"), mutates_args=(2,))
    a, b = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    out = nan_like(a)
    # torch gives some empty tensors strides TVM's compact check refuses; tvmfast passes
    # empty tensors with compact strides (there is no element to address).
    op(a, b, out)
    f(a, b, out)
    assert torch.equal(out, a + b)


# ---------------------------------------------------------------------------
# 8. Meta and sparse tensors, vmap
# ---------------------------------------------------------------------------
def test_meta_tensors_run_the_fake_implementation(add_op, relax_vm):
    m = torch.empty(128, device="meta")
    assert add_op(m, m, m) is None
    y = mm_relu_op(relax_vm)(torch.empty(7, 8, device="meta"), torch.empty(8, 3, device="meta"))
    assert y.device.type == "meta" and y.shape == (7, 3)


def test_sparse_tensor_error_is_one_clear_line(add_op, gen):
    a = torch.randn(128, generator=gen)
    with pytest.raises(RuntimeError) as info:
        add_op(a.to_sparse(), a, nan_like(a))
    message = str(info.value)
    assert message.startswith("tvmfast: argument #0:") and "DLPack" in message
    assert "\n" not in message and "frame #" not in message


def test_vmap(add_op, relax_vm, gen):
    def add(x, y, out):
        add_op(x, y, out)
        return out

    xs, y = torch.randn(5, 128, generator=gen), torch.randn(128, generator=gen)
    outs = nan_like(xs)
    result = torch.vmap(add, in_dims=(0, None, 0))(xs, y, outs)
    assert torch.equal(outs, xs + y) and torch.equal(result, xs + y)
    # batched along a strided dimension: slices go through contiguous copies, written back
    xt, outt = xs.T.contiguous(), torch.full((128, 5), float("nan"))
    torch.vmap(add, in_dims=(1, None, 1))(xt, y, outt)
    assert torch.equal(outt, (xs + y).T)
    with pytest.raises(RuntimeError, match=rf"{add_op._name} under torch.vmap writes argument #2, which is not "
                                           r"batched"):
        torch.vmap(add, in_dims=(0, None, None))(xs, y, nan_like(y))
    op = mm_relu_op(relax_vm)
    xb, w = torch.randn(3, 4, 8, generator=gen), torch.randn(8, 3, generator=gen)
    torch.testing.assert_close(torch.vmap(op, in_dims=(0, None))(xb, w), torch.relu(xb @ w))


# ---------------------------------------------------------------------------
# 9. The op in a model, eager and under torch.compile; scalar arguments; argument errors
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def add128_op():
    f = tvmfast.bind(kernels.build_add(128), num_args=3)
    return f.as_torch_op("tvmfast_test::add128", mutates_args=(2,))


def model(op, x, y):
    out = torch.empty_like(x)
    op(x * 2, y, out)
    return torch.relu(out) + 1


def test_custom_op_eager(add128_op):
    x, y = torch.randn(128), torch.randn(128)
    out = torch.full((128,), float("nan"))
    add128_op(x, y, out)
    assert torch.equal(out, x + y)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_custom_op_under_torch_compile_fullgraph(add128_op, backend):
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, y: model(add128_op, x, y), backend=backend, fullgraph=True)
    for _ in range(3):
        x, y = torch.randn(128), torch.randn(128)
        torch.testing.assert_close(compiled(x, y), model(add128_op, x, y), rtol=0, atol=0)
        torch.testing.assert_close(compiled(x, y), torch.relu(2 * x + y) + 1)


def test_custom_op_with_scalars():
    f = tvmfast.bind(kernels.build_scale(64))
    a = torch.randn(64)
    op = f.as_torch_op("tvmfast_test::scale64", mutates_args=(1,), example_args=[a, a, 1.0, 1])
    out = torch.full((64,), float("nan"))
    op(a, out, 0.5, 3)
    torch.testing.assert_close(out, a * 0.5 + 3)
    compiled = torch.compile(lambda x: (op(x, out, 2.0, -1), out * 1)[1], backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(a), a * 2 - 1)


def test_custom_op_argument_errors():
    f = tvmfast.bind(kernels.build_add(128))
    with pytest.raises(ValueError, match="needs bind"):
        f.as_torch_op("tvmfast_test::x")
    f = tvmfast.bind(kernels.build_add(128), num_args=3)
    with pytest.raises(ValueError, match="namespace::name"):
        f.as_torch_op("noname")
    with pytest.raises(ValueError, match="mutates_args position 5"):
        f.as_torch_op("tvmfast_test::y", mutates_args=(5,))
    with pytest.raises(TypeError, match="example argument #1: expected a torch.Tensor"):
        f.as_torch_op("tvmfast_test::z", example_args=[torch.randn(2), "s", torch.randn(2)])


# ---------------------------------------------------------------------------
# The op object: torch's own OpOverload, called in C
# ---------------------------------------------------------------------------


def test_the_op_is_torchs_opoverload_object_and_calls_like_it(add_f, gen):
    """as_torch_op gives the OpOverload torch.ops hands out (same object), of a subclass whose call
    runs OpOverload.__call__'s one line in C: same results, errors and keyword handling."""
    name = fresh_name("overload")
    op = add_f.as_torch_op(name, mutates_args=(2,))
    ns, _, short = name.partition("::")
    assert op is getattr(getattr(torch.ops, ns), short).default
    assert isinstance(op, torch._ops.OpOverload)
    # this torch's OpOverload.__call__ is the plain one: the op's class is tvmfast's subclass
    from tvmfast.torch_op import OpOverloadCalledInC
    assert type(op) is OpOverloadCalledInC
    assert repr(op) == f"<OpOverload(op='{ns}.{short}', overload='default')>"
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    out, ref = nan_like(a), nan_like(a)
    assert op(a, b, out) is None and torch.equal(out, a + b)
    op._op(a, b, ref)
    assert torch.equal(out, ref)
    out.fill_(float("nan"))
    op(a, b, a2=out)  # keywords as the schema names them
    assert torch.equal(out, a + b)
    for call in (op, op._op, torch._ops.OpOverload.__call__.__get__(op)):
        with pytest.raises(Exception) as err:
            call(a, b)
        assert type(err.value) is RuntimeError and "a2" in str(err.value)
        with pytest.raises(Exception) as err2:
            call(a, b, torch.empty(3))
        assert type(err2.value) is ValueError and "shape" in str(err2.value).lower()


def test_ops_stay_plain_opoverloads_where_torchs_call_does_more(tmp_path):
    """Where torch's OpOverload.__call__ is anything but `return self._op(*args, **kwargs)`, the op is
    left a plain OpOverload (its own __call__ runs)."""
    import subprocess
    import sys
    script = tmp_path / "plain.py"
    script.write_text(
        "import sys, torch, tvm_ffi, tvmfast\n"
        "calls = []\n"
        "def traced_call(self, /, *args, **kwargs):\n"
        "    calls.append(1)\n"
        "    return self._op(*args, **kwargs)\n"
        "torch._ops.OpOverload.__call__ = traced_call\n"
        "f = tvmfast.bind(tvm_ffi.get_global_func('testing.nop'), num_args=1)\n"
        "op = f.as_torch_op('tvmfast_test_plain::nop', mutates_args=(0,))\n"
        "assert type(op) is torch._ops.OpOverload, type(op)\n"
        "op(torch.zeros(2))\n"
        "assert calls == [1], calls\n"
        "print('plain ok')\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "plain ok" in run.stdout
