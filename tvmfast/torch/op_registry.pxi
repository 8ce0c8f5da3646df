# The native op's set-up and registration (under the GIL): the one-time set-up finds
# torch's functions and self-tests a C kernel (what it learns of torch's layout is
# learned in torch/probes.pxi); registration gives an op name its slot for the process
# and publishes the op's target (torch/native_op.pxi says how targets are swapped and
# freed, and what a fork child inherits).

def _native_op_setup():
    """Find torch's functions, learn where TensorImpl keeps its autograd metadata, and
    self-test a C kernel's error path, once (a one-time set-up, once.pxi).  Returns
    whether native ops are on."""
    if not setup_torch_direct_export():
        return False  # called from inside torch's set-up: this op keeps its Python kernel
    native_op_setup.run(_run_native_op_setup)
    return native_op_ready


def _reset_native_op_setup():
    global native_op_state, native_op_ready
    native_op_state = "not set up"
    native_op_ready = False


cdef OneTimeSetup native_op_setup = one_time_setup(_reset_native_op_setup)


def _run_native_op_setup():
    global native_op_state
    from tvmfast import _torch
    global native_op_ready
    native_op_state = "off (set-up failed)"
    torch = sys.modules["torch"]
    try:
        with _torch.setup_scope(torch):
            native_op_state = _native_op_setup_in_scope(torch, _torch)
    except Exception as exc:  # every op keeps its Python kernel
        native_op_ready = False
        native_op_state = f"off (set-up failed: {type(exc).__name__}: {exc})"


cdef str _native_op_setup_in_scope(torch, _torch):
    """The set-up itself; returns the state line."""
    global native_op_ready, autograd_meta_offset, steal_tensor, steal_tensor_copies, tensor_handle_of
    global op_torch_api, inference_keyset_mask
    if os.environ.get("TVMFAST_NATIVE_OP", "1") == "0":
        return "off (TVMFAST_NATIVE_OP=0)"
    if not tvmfast_torch_layout.enabled:
        return "off (torch tensors are not read from TensorImpl here)"
    found, reason = _torch.find_op_symbols()
    if found is None:
        return f"off ({reason})"
    aoti = getattr(torch._C, "_aoti", None)
    steal_tensor = getattr(aoti, "alloc_tensor_by_stealing_from_void_ptr", None)
    tensor_handle_of = getattr(aoti, "unsafe_alloc_void_ptr_from_tensor", None)
    if steal_tensor is None or tensor_handle_of is None:
        return "off (torch._C._aoti has no tensor handle conversions)"
    op_torch_api = exchange_api_of(torch.Tensor, 0)
    if op_torch_api == NULL:
        return "off (torch has no DLPack C exchange API)"
    offset = _learn_autograd_meta(torch)
    if offset < 0:
        return "off (TensorImpl's autograd metadata not found)"
    autograd_meta_offset = offset
    mask = _learn_inference_keyset_mask(torch)
    if mask == 0:
        return "off (the DispatchKeySet bits of inference tensors not found)"
    inference_keyset_mask = mask
    tvmfast_set_torch_op_api(found["library_init_impl"], found["library_impl"], found["delete_library"],
                             found["bump_version"], found["delete_tensor"], found["requires_grad"],
                             found["try_get_forward_level"], found["inference_mode_enabled"])
    tvmfast_set_torch_alloc_api(found["empty_strided"], found["new_tensor_handle"], found["get_dtype"],
                                found["device_type_cpu"], found["device_type_cuda"])
    copies = _learn_steal_copies(torch)
    if copies is None:
        return "off (torch._C._aoti's tensor handle conversion neither copies nor takes the handle)"
    steal_tensor_copies = copies
    tvmfast_set_op_body(op_body)
    native_op_ready = True
    reason = _native_op_selftest(torch)
    if reason is not None:
        native_op_ready = False
        return f"off (self-test: {reason})"
    return "on (C kernels through torch's stable C ABI, self-tested)"


cdef object _native_op_selftest(torch):
    """Register a probe op whose function raises, call it, and check the exception that
    reaches Python is the one raised (type, message); also a call that succeeds."""
    global selftest_attempts
    marker = "tvmfast native op self-test"

    def probe(x, y):
        if y.numel() == 0:
            raise KeyError(marker)

    fn = tvm_ffi.convert(probe)
    # A fresh name per attempt: a fork child may run the set-up again after a thread that
    # does not exist in it left a probe half-registered.
    name = f"probe{selftest_attempts}"
    selftest_attempts += 1
    qualname = f"tvmfast_selftest::{name}"
    lib = torch.library.Library("tvmfast_selftest", "FRAGMENT")
    lib.define(f"{name}(Tensor x, Tensor(a!) y) -> ()")
    op = getattr(torch.ops.tvmfast_selftest, name)
    try:
        if not register_native_op(qualname, "tvmfast_selftest", name, fn, None, False,
                                  [OP_TENSOR, OP_TENSOR], [1], 0, None, tuple, [0, 1], 0, []):
            return "no slot left for the probe op"
        x = torch.zeros(2)
        y = torch.zeros(2)
        version = y._version
        op(x, y)
        if y._version != version + 1:
            return "the version counter was not bumped"
        try:
            op(x, torch.zeros(0))
        except KeyError as err:
            if marker not in str(err):
                return f"the error reached Python as {err!r}"
        except BaseException as err:
            return f"the error reached Python as {type(err).__name__}: {err}"
        else:
            return "the error did not reach Python"
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    finally:
        lib._destroy()
    return None


cdef bint register_native_op(str qualname, str namespace, str op_name, object function, object bound,
                             bint python_only, list kinds, list mutated, int n_returns,
                             object python_kernel, object outputs, list source, int n_allocated,
                             list alloc_program) except -1:
    """Make qualname's kernel the C one (a slot for the process), calling function as bound
    (a BoundFunction: alignment and release_gil; None: no alignment, GIL released); or, if it
    has one already, point its slot at function.  kinds and mutated are the op's arguments;
    source maps each function argument to its op argument, or to -1 - k for the k-th of
    n_allocated outputs that alloc_program allocates (native_op.pxi).  False when no slot is
    left (the op keeps its Python kernel).  The previous target is freed by its last call
    (see the top)."""
    global n_op_slots
    cdef int k
    cdef OpSlot* slot
    cdef OpTarget* target
    cdef OpTarget* old
    cdef void* library = NULL
    cdef int i
    k = op_slot_of.get(qualname, -1)
    if k < 0:
        if n_op_slots == TVMFAST_MAX_OPS:
            return False
        k = n_op_slots
    slot = &op_slots[k]
    target = <OpTarget*>calloc(1, sizeof(OpTarget))
    if target == NULL:
        raise MemoryError()
    target.refs = 1
    target.function = <TVMFFIObjectHandle><uint64_t>function.__chandle__()
    TVMFFIObjectIncRef(target.function)
    if bound is None:
        bound = BoundFunction(function, alignment=1, release_gil=True)
    target.bound = <PyObject*>bound
    Py_INCREF(bound)
    target.call_target = &(<BoundFunction>bound).target
    target.python_only = python_only
    target.python_kernel = <PyObject*>python_kernel
    Py_INCREF(python_kernel)
    target.n_call_args = len(source)
    for i in range(len(source)):
        target.source[i] = source[i]
    target.n_allocated = n_allocated
    if alloc_program:
        target.alloc_program = <int64_t*>malloc(len(alloc_program) * sizeof(int64_t))
        if target.alloc_program == NULL:
            free_target(target)
            raise MemoryError()
        for i in range(len(alloc_program)):
            target.alloc_program[i] = alloc_program[i]
    if k == n_op_slots:
        slot.n_args = len(kinds)
        slot.n_returns = n_returns
        slot.n_mutated = len(mutated)
        for i in range(len(kinds)):
            slot.kinds[i] = kinds[i]
        for i in range(len(mutated)):
            slot.mutated[i] = mutated[i]

        slot.entering = 0
        slot.target = target
        ns = namespace.encode()
        if tvmfast_torch_op_api.library_init_impl(ns, b"CompositeExplicitAutograd", b"tvmfast", 0, &library) != 0:
            free_target(target)
            raise RuntimeError(f"tvmfast: torch refused a library for {qualname}")
        if tvmfast_torch_op_api.library_impl(library, op_name.encode(), tvmfast_op_entry_at(k)) != 0:
            tvmfast_torch_op_api.delete_library(library)
            free_target(target)
            raise RuntimeError(f"tvmfast: torch refused the C kernel of {qualname}")
        slot.library = library
        slot.qualname = <PyObject*>qualname
        Py_INCREF(qualname)
        slot.outputs = <PyObject*>outputs
        Py_INCREF(outputs)
        op_slot_of[qualname] = k
        n_op_slots += 1
        return True
    old = <OpTarget*>tvmfast_load_ptr(&slot.target)
    tvmfast_store_ptr(&slot.target, target)
    with nogil:
        # Only threads between loading the old target and referencing it; never a call.
        while tvmfast_atomic_load(&slot.entering) != 0:
            sched_yield()
    if tvmfast_atomic_add(&old.refs, -1) == 0:
        free_target(old)
    return True


cdef void native_op_after_fork_in_child() noexcept:
    """No thread of the parent but the one that forked is in this process: none is entering a
    slot (see the top)."""
    cdef int k
    for k in range(n_op_slots):
        tvmfast_atomic_store(&op_slots[k].entering, 0)


def _native_op_register(qualname, namespace, op_name, bound, kinds, mutated, n_returns, python_kernel, outputs,
                        source=None, n_allocated=0, alloc_program=(), python_only=False):
    """as_torch_op's C kernel for qualname (see torch_op.py), calling python_kernel for what it
    does not take and outputs(value) -> output tensors for a result it does not store itself
    (both made by torch_op, so the core imports nothing of it); kinds and mutated are the op's
    arguments; a functional op also gives source, n_allocated and alloc_program (see
    register_native_op); python_only: the C kernel always calls python_kernel.  False where this
    op keeps its Python kernel only (native ops off,
    too many arguments, an argument kind not taken, no slot left)."""
    cdef BoundFunction fn = <BoundFunction?>bound
    if source is None:
        source = list(range(len(kinds)))
    if not _native_op_setup() or len(source) > OP_MAX_ARGS:
        return False
    codes = {"Tensor": OP_TENSOR, "SymInt": OP_INT, "float": OP_FLOAT, "bool": OP_BOOL}
    if any(kind not in codes for kind in kinds):
        return False
    # An object that wraps the function (a CuTe DSL compiled kernel) passes a call of all its
    # positional parameters to the function unchanged (direct_args): the C kernel calls the
    # function then; any other call is the wrapper's own (the Python kernel).
    python_only = python_only or (fn.wrapper is not None and fn.direct_args != len(source))
    return register_native_op(qualname, namespace, op_name, fn.function, fn, python_only,
                              [codes[kind] for kind in kinds], list(mutated), n_returns, python_kernel, outputs,
                              list(source), n_allocated, list(alloc_program))


def _native_op_dtype_code(dtype):
    """The stable C ABI's code of a torch dtype (as aoti_torch_get_dtype gives it), or None."""
    cdef int32_t code = -1
    cdef void* handle
    if not _native_op_setup():
        return None
    torch = sys.modules["torch"]
    capsule = tensor_handle_of(torch.empty(0, dtype=dtype))
    handle = PyCapsule_GetPointer(capsule, NULL)
    ret = tvmfast_torch_op_api.get_dtype(handle, &code)
    tvmfast_delete_aten_tensor(handle)
    return code if ret == 0 else None


def _native_op_has_slot(qualname):
    return qualname in op_slot_of


def _native_op_state():
    """One line: whether as_torch_op registers C kernels, or why not."""
    if native_op_state == "not set up" and "torch" in sys.modules:
        _native_op_setup()
    return native_op_state


def _set_op_overload_call(type cls):
    """Make calls of cls's instances (a subclass of torch's OpOverload, torch_op.py) run
    self._op(*args, **kwargs) in C."""
    from torch._ops import OpOverload  # noqa: PLC0415 (torch is imported by the caller)
    if cls is OpOverload or not issubclass(cls, OpOverload):
        raise TypeError(f"not a subclass of OpOverload: {cls!r}")
    tvmfast_set_op_overload_call(<PyTypeObject*>cls)
