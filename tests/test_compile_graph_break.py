"""A bound (or frozen) function called inside torch.compile, not registered with as_torch_op: Dynamo
says what to do - register it with as_torch_op - instead of its generic "Please report an issue to
PyTorch"; fullgraph=True raises that, otherwise the graph breaks there and the call runs eagerly,
with the right result.  The call itself is untouched: ``f(...)`` and ``f.__call__(...)`` call the
function."""
import pytest

import tvmfast
from support.helpers import nan_like

torch = pytest.importorskip("torch")


@pytest.fixture
def add(add_mod):
    torch._dynamo.reset()
    yield tvmfast.bind(add_mod, num_args=3)
    torch._dynamo.reset()


def _tensors(gen):
    a, b = torch.randn(128, generator=gen), torch.randn(128, generator=gen)
    return a, b, nan_like(a)


def test_fullgraph_error_names_as_torch_op(add, gen):
    def step(a, b, out):
        add(a, b, out)
        return out * 2

    compiled = torch.compile(step, fullgraph=True, backend="eager")
    with pytest.raises(torch._dynamo.exc.Unsupported) as info:
        compiled(*_tensors(gen))
    message = str(info.value)
    assert "as_torch_op" in message and "tvmfast.BoundFunction" in message, message
    assert "Please report an issue to PyTorch" not in message


def test_frozen_function_fullgraph_error_names_as_torch_op(add, gen):
    a, b, out = _tensors(gen)
    frozen = add.freeze({2: out})

    def step(a, b):
        frozen(a, b)
        return out * 2

    with pytest.raises(torch._dynamo.exc.Unsupported, match=r"tvmfast\.FrozenFunction.*as_torch_op"):
        torch.compile(step, fullgraph=True, backend="eager")(a, b)


def test_without_fullgraph_the_graph_breaks_and_the_call_runs(add, gen):
    def step(a, b, out):
        c = a * 1
        add(c, b, out)
        return out + 1

    a, b, out = _tensors(gen)
    result = torch.compile(step, backend="eager")(a, b, out)
    assert torch.equal(out, a + b) and torch.equal(result, a + b + 1)
    explanation = torch._dynamo.explain(step)(a, b, nan_like(a))
    assert explanation.graph_break_count == 1
    assert "as_torch_op" in str(explanation.break_reasons[0].reason)


def test_calls_are_untouched(add, gen):
    a, b, out = _tensors(gen)
    assert add.__call__(a, b, out) is None and torch.equal(out, a + b)  # the explicit form
    out.fill_(float("nan"))
    add(a, b, out)
    assert torch.equal(out, a + b)
    with pytest.raises(TypeError):
        add.__call__(a, b, out=out)
    assert "as_torch_op" in type(add).__call__._torchdynamo_disable_msg

    class Sub(tvmfast.BoundFunction):  # a Python subclass calls through __call__: no recursion
        pass

    sub = Sub(add.function, alignment=64)
    out.fill_(float("nan"))
    sub(a, b, out)
    assert torch.equal(out, a + b)
