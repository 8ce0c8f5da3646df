"""Every argument kind of the speed matrix (``support.argument_kinds.cells``, which ``bench.matrix``
times): ``tvmfast.bind(fn)(*args)`` and its prepared call give what ``fn(*args)`` gives (the
tvm_ffi.Function called directly): the same result - type, value element by element, the argument's
memory or object where tvm_ffi gives that back - or the same error (type and message), and the same
effect on the arguments, on fresh random inputs. The benchmark times these same cells, so what it
times is what is checked here."""
import os
import traceback

import pytest

torch = pytest.importorskip("torch")  # the matrix's tensor cells are torch's
pytest.importorskip("numpy")

import tvm_ffi  # noqa: E402

import tvmfast  # noqa: E402
from support import argument_kinds as kinds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA = torch.cuda.is_available()
CELLS = {cell.name: cell for cell in kinds.cells(torch_cuda=CUDA)}
ECHO = tvm_ffi.get_global_func("testing.echo")


def params(keep=lambda cell: True):
    return [pytest.param(name, marks=[pytest.mark.gpu] if "CUDA" in name else [], id=name)
            for name, cell in CELLS.items() if keep(cell)]


def is_echo(cell):
    return not cell.kernel and cell.fn.same_as(ECHO)


def test_the_cells_cover_every_group_and_name_each_kind_once():
    assert {cell.group for cell in CELLS.values()} == set(kinds.GROUPS)
    assert len(CELLS) == len(kinds.cells(torch_cuda=CUDA)) >= 39
    assert [c.name for c in CELLS.values() if c.error] == [c.name for c in CELLS.values() if c.group == "errors"]


@pytest.mark.parametrize("name", params())
def test_same_outcome_as_tvm_ffi(name):
    cell = CELLS[name]
    f = tvmfast.bind(cell.fn)
    for _ in range(3):  # fresh random inputs each time, the same bound function
        c = kinds.check(cell, f)
        if "2**70" not in cell.name:  # beyond int64: a BigInt, or (older tvm_ffi) its OverflowError
            assert (c.ref.error is not None) == cell.error, c.ref.describe()
        assert c.prepare_error is None, f"prepare refused the arguments: {c.prepare_error!r}"
        assert c.same, c.differences()


@pytest.mark.parametrize("name", params(lambda cell: cell.group == "tensors" and is_echo(cell)))
def test_echo_of_a_tensor_gives_back_what_tvm_ffi_gives(name):
    """The returned object is of tvm_ffi's type (a torch tensor for a torch tensor, a tvm_ffi.Tensor
    otherwise) and shares the argument's memory where tvm_ffi's does."""
    cell = CELLS[name]
    f = tvmfast.bind(cell.fn)
    args = cell.make_args()
    ptr = kinds.identities(args)[0]
    ref, got, prepared = cell.fn(*args), f(*args), f.prepare(*args)()
    assert type(got) is type(ref) and type(prepared) is type(ref)
    if ref.data_ptr() == ptr:
        assert got.data_ptr() == ptr and prepared.data_ptr() == ptr
    else:
        assert got.data_ptr() != ptr and prepared.data_ptr() != ptr
    assert tuple(got.shape) == tuple(ref.shape) and str(got.dtype) == str(ref.dtype)


def frames_in_tvmfast(error):
    """The frames of an exception's traceback whose file is tvmfast's (paths inside this checkout are
    taken relative to it, so a checkout in a folder named tvmfast does not count)."""
    found = []
    for frame in traceback.extract_tb(error.__traceback__):
        path = frame.filename
        if os.path.isabs(path) and path.startswith(ROOT + os.sep) and not path.startswith(
                os.path.join(ROOT, "tvmfast") + os.sep):
            path = os.path.relpath(path, ROOT)
        if "tvmfast" in path:
            found.append(f"{frame.filename}:{frame.lineno} in {frame.name}")
    return found


def callee_frames(error):
    """(file, function) of each traceback frame below the caller's: what the call added."""
    frames = traceback.extract_tb(error.__traceback__)
    return [(f.filename, f.name) for f in frames if os.path.abspath(f.filename) != os.path.abspath(__file__)]


@pytest.mark.parametrize("name", params(lambda cell: cell.error))
def test_errors_carry_tvm_ffis_traceback_and_no_tvmfast_frame(name):
    """An error comes out as from ``fn(*args)``: the frames tvm_ffi's traceback has below the caller
    (the callee's C++ frames, a callback's Python frames), without tvm_ffi's own Function.__call__
    frame, and no frame of tvmfast's own."""
    cell = CELLS[name]
    f = tvmfast.bind(cell.fn)
    args = cell.make_args()
    with pytest.raises(Exception) as ref:
        cell.fn(*args)
    expected = [frame for frame in callee_frames(ref.value) if not frame[0].endswith("function.pxi")]
    found = {}
    for path, call in (("dynamic", lambda: f(*args)), ("prepared", f.prepare(*args))):
        with pytest.raises(Exception) as info:
            call()
        if frames_in_tvmfast(info.value):
            found[path] = frames_in_tvmfast(info.value)
        assert type(info.value) is type(ref.value) and str(info.value) == str(ref.value)
        assert repr(info.value.__cause__) == repr(ref.value.__cause__)
        assert callee_frames(info.value) == expected, path
    assert not found, "tvmfast's frames in the traceback:\n" + "\n".join(
        f"{path}: {frame}" for path, frames in found.items() for frame in frames)


# The check is not vacuous: a call that gives anything else is caught.
class Stand:
    """A stand-in for a bound function: ``call(*args)`` for the call and the prepared call."""

    def __init__(self, call):
        self.call = call

    def __call__(self, *args):
        return self.call(*args)

    def prepare(self, *args):
        return lambda: self.call(*args)


def cell_named(start):
    return next(cell for name, cell in CELLS.items() if name.startswith(start))


def test_the_check_catches_another_result_a_copy_an_error_or_a_missing_write():
    nop = tvmfast.bind(tvm_ffi.get_global_func("testing.nop"))
    echo = cell_named("torch CPU tensor -> echo")
    assert not kinds.check(echo, nop).same  # None for a tensor
    assert not kinds.check(echo, Stand(lambda t: t.clone())).same  # the value, in other memory
    assert not kinds.check(cell_named("int -> echo"), Stand(lambda x: float(x))).same  # another type
    assert not kinds.check(cell_named("tuple of 2 ints"), Stand(lambda x: tvm_ffi.convert(x[::-1]))).same

    def other_message(kind, message):
        raise ValueError(message + "!")

    assert not kinds.check(cell_named("C++ function raises"), Stand(other_message)).same
    kernel = next(cell for cell in CELLS.values() if cell.kernel and not cell.error and "torch CPU" in cell.name)
    c = kinds.check(kernel, nop)  # returns None as the kernel does, but writes no output
    assert c.dynamic.canon == c.ref.canon and not c.same
    assert "arguments after the call differ" in c.differences()


def test_numpy_arrays_are_read_in_c_on_this_numpy():
    """The sample check of numpy's array fields agrees with numpy's own __dlpack__ (else
    every array would silently take the slower __dlpack__ path)."""
    from tvmfast import _core
    assert _core._numpy_arrays_read_in_c()


@pytest.mark.parametrize("strides", [(-4,), (8,), (0,), (4,), (-8,)])
def test_empty_numpy_views_pass_their_strides_as_rt_mod_does(strides):
    """An empty numpy view's strides may be anything; TVM's layout check sees them as numpy's
    __dlpack__ exports them to rt_mod: the same success or the same error."""
    import numpy as np
    pytest.importorskip("tvm")
    from support import tvm_kernels
    shape = (0,)
    mod = tvm_kernels.build_add_dynamic()
    fn = mod["main"]
    bound = tvmfast.bind(mod)
    whole = np.random.rand(64).astype("float32")
    view = np.lib.stride_tricks.as_strided(whole[8:], shape, strides)
    args = [np.zeros(shape, dtype="float32"), np.zeros(shape, dtype="float32"), view]
    outcomes = []
    for call in (fn, bound):
        try:
            call(*args)
            outcomes.append(None)
        except Exception as err:  # noqa: BLE001 - the error itself is compared
            outcomes.append((type(err), str(err)))
    assert outcomes[0] == outcomes[1]


def test_results_tvm_ffi_builds_take_the_field_getter_bridge():
    """Object results (Array, Map, Function...) reach tvm_ffi's conversion through a FieldGetter
    call, not a tvm_ffi.Function call (~45 ns more), wherever FieldGetter has the layout read."""
    from tvmfast import _core
    getter = getattr(tvm_ffi.core, "FieldGetter", None)
    if getter is None or getter.__basicsize__ != 40:
        pytest.skip("this tvm_ffi's FieldGetter has another layout: the Function bridge is used")
    assert _core._result_bridge() == "field getter"
    echo = tvmfast.bind(ECHO)
    for value in (tvm_ffi.convert([1, 2]), tvm_ffi.convert({"k": 3}), (4, 5), [6, [7]]):
        got, want = echo(value), ECHO(value)
        assert type(got) is type(want) and str(got) == str(want)


def test_ints_beyond_int64_round_trip_as_tvm_ffi_gives_them():
    """Ints beyond int64 (ffi.BigInt with tvm_ffi >= 0.1.15, converted in C both ways) give
    what tvm_ffi gives, alone and inside containers: random sizes and signs, and the edges."""
    import random

    from tvmfast import _core
    try:
        ECHO(2**70)
    except (OverflowError, TypeError, ValueError):
        pytest.skip("this tvm_ffi has no BigInt (an int beyond int64 is its error, left to it)")
    assert _core._big_ints_in_c()
    rng = random.Random()
    values = [2**63, -2**63 - 1, 2**64 - 1, 2**64, -2**64, 2**127, 2**1023, 2**1024, -2**1024 - 1]
    values += [rng.choice((1, -1)) * rng.getrandbits(rng.randint(64, 6000)) for _ in range(200)]
    echo = tvmfast.bind(ECHO)
    for value in values:
        want = ECHO(value)
        assert want == value
        got = echo(value)
        assert type(got) is type(want) and got == want
        assert echo([value, -value])[1] == -value
    big = -(2**90) - 3
    assert echo.prepare(big)() == big


def test_a_list_changed_while_its_items_convert_gives_what_tvm_ffi_gives():
    """tvm_ffi converts a list as tuple(list), its items at that moment: so does tvmfast where an item's
    conversion runs Python code (a __dlpack__ that appends to the list), and a list of plain ints, floats,
    bools, strs and None (whose conversion runs none) is converted in place, with the same result."""
    import numpy as np

    class Producer:
        def __init__(self, target):
            self.target = target
            self.array = np.arange(4, dtype="float32")

        def __dlpack__(self, *args, **kwargs):
            self.target.append(99)  # the list grows while its items are converted
            return self.array.__dlpack__(*args, **kwargs)

        def __dlpack_device__(self):
            return self.array.__dlpack_device__()

    echo = tvmfast.bind(ECHO)
    results = []
    for call in (ECHO, echo):
        items = [1, 2.5]
        items.append(Producer(items))
        got = call(items)
        results.append((len(got), got[0], got[1], len(items)))
    assert results[0] == results[1] == (3, 1, 2.5, 4)
    plain = [7, -2.5, True, "x", None, 2**70]
    assert str(echo(plain)) == str(ECHO(plain)) and len(echo(plain)) == len(plain)
