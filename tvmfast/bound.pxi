# BoundFunction: bind() resolves a TVM function once; each call converts its
# arguments on the C stack and calls it (one vectorcall, no argument tuple).

cdef object bound_vectorcall(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames):
    if kwnames != NULL and PyTuple_GET_SIZE(kwnames) != 0:
        raise TypeError("tvmfast: bound functions take positional arguments only")
    if (<BoundFunction>callable).handle == NULL:
        raise TypeError("tvmfast: BoundFunction was not initialized; use tvmfast.bind()")
    return (<BoundFunction>callable).call_vector(args, PyVectorcall_NARGS(nargsf))


cdef object frozen_vectorcall(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames):
    if kwnames != NULL and PyTuple_GET_SIZE(kwnames) != 0:
        raise TypeError("tvmfast: bound functions take positional arguments only")
    if (<FrozenFunction>callable).template == NULL:
        raise TypeError("tvmfast: FrozenFunction was not initialized; use freeze()/prepare()")
    return (<FrozenFunction>callable).call_vector(args, PyVectorcall_NARGS(nargsf))


cdef object resolve_function(obj, name):
    """A tvm_ffi.Function from a module, a function or a library path."""
    import os
    if isinstance(obj, tvm_ffi.Function):
        if name is not None:
            raise TypeError("tvmfast.bind: name= is only for modules and library paths")
        return obj
    if isinstance(obj, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(obj))
        if not os.path.exists(path):
            raise FileNotFoundError(f"tvmfast.bind: no such library: {path}")
        obj = tvm_ffi.load_module(path)
    if isinstance(obj, tvm_ffi.Module):
        if name is None:
            name = getattr(obj, "entry_name", None) or "main"
        try:
            return obj.get_function(name, query_imports=True)
        except AttributeError:
            raise AttributeError(f"tvmfast.bind: the module has no function named {name!r}") from None
    getter = getattr(obj, "__getitem__", None)
    if getter is not None and name is not None:  # e.g. relax.VirtualMachine
        func = getter(name)
        if isinstance(func, tvm_ffi.Function):
            return func
    raise TypeError(
        f"tvmfast.bind: expected a TVM runtime module, a tvm_ffi.Function or a library path; "
        f"got {type(obj).__qualname__}")


cdef class BoundFunction:
    """A TVM function bound for cheap calls: ``f(*args)`` == ``rt_mod(*args)``.

    Create with :func:`tvmfast.bind`.  Tensors (torch or any DLPack producer), int,
    float, bool and None are accepted; TVM's own argument checks still run and its
    errors come out as the same exceptions ``rt_mod(*args)`` raises.
    """

    def __cinit__(self):
        self.vectorcall = <void*>bound_vectorcall
        self.handle = NULL

    def __init__(self, obj, name=None, *, num_args=None, release_gil=False, owned_tensors=None,
                 alignment=64):
        if not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1):
            raise ValueError(f"tvmfast.bind: alignment must be a power of two >= 1, got {alignment!r}")
        self.align_mask = <uint64_t>(alignment - 1)
        self.function = resolve_function(obj, name)
        self.handle = <TVMFFIObjectHandle><uint64_t>self.function.__chandle__()
        self.num_args = -1 if num_args is None else int(num_args)
        self.release_gil = bool(release_gil)
        if owned_tensors is None:
            self.tensor_mode = TENSOR_MODE_UNDECIDED
        else:
            self.tensor_mode = TENSOR_MODE_OWNED if owned_tensors else TENSOR_MODE_BORROWED
        self.seen_num_args = -1

    @property
    def owned_tensors(self):
        """True/False once decided; None until the first call with a tensor."""
        if self.tensor_mode == TENSOR_MODE_UNDECIDED:
            return None
        return self.tensor_mode == TENSOR_MODE_OWNED

    def __call__(self, *args):
        # Only PyObject_Call with a ready tuple lands here; plain calls use vectorcall.
        return bound_vectorcall(<PyObject*>self, <void**>PySequence_Fast_ITEMS(args), len(args), NULL)

    cdef object call_vector(self, void** items, Py_ssize_t n):
        cdef TVMFFIAny packed[TVMFAST_STACK_ARGS]
        cdef DLTensor dl[TVMFAST_STACK_ARGS]
        cdef TVMFFIObjectHandle owned[TVMFAST_STACK_ARGS]
        cdef TVMFFIAny* heap_packed
        cdef DLTensor* heap_dl
        cdef TVMFFIObjectHandle* heap_owned
        if self.num_args >= 0 and n != self.num_args:
            raise_count_error(self.num_args, n)
        if n <= TVMFAST_STACK_ARGS:
            ret = self.convert_and_call(items, n, packed, dl, owned)
        else:
            # More arguments than the stack buffers hold: the same, on the heap.
            heap_packed = <TVMFFIAny*>malloc(n * sizeof(TVMFFIAny))
            heap_dl = <DLTensor*>malloc(n * sizeof(DLTensor))
            heap_owned = <TVMFFIObjectHandle*>malloc(n * sizeof(void*))
            try:
                if heap_packed == NULL or heap_dl == NULL or heap_owned == NULL:
                    raise MemoryError()
                ret = self.convert_and_call(items, n, heap_packed, heap_dl, heap_owned)
            finally:
                free(heap_packed)
                free(heap_dl)
                free(heap_owned)
        if ret is RETRY_OWNED:
            return self.call_vector(items, n)
        self.seen_num_args = <int>n
        return ret

    cdef inline object convert_and_call(self, void** items, Py_ssize_t n, TVMFFIAny* packed,
                                        DLTensor* dl, TVMFFIObjectHandle* owned):
        cdef CallState st
        cdef Py_ssize_t i
        init_state(&st, owned, self.align_mask)
        st.items = items
        try:
            for i in range(n):
                convert_arg(<PyObject*>items[i], i, &packed[i], &dl[i], &st, self.tensor_mode)
            return finish_call(self, packed, <int32_t>n, &st)
        finally:
            release_state(&st)

    def freeze(self, frozen):
        """Fix some arguments: ``g = f.freeze({0: a, 3: zeros}); g(x, y)``.

        ``frozen`` maps argument positions to values, converted once here and kept
        alive; the result takes the remaining arguments in order.  Needs
        ``num_args`` (given to :func:`bind`, or learned from a successful call).
        """
        if not isinstance(frozen, dict):
            raise TypeError(f"tvmfast: freeze() takes a dict {{position: value}}, got {type(frozen).__qualname__}")
        cdef int n = self.num_args if self.num_args >= 0 else self.seen_num_args
        if n < 0:
            raise ValueError(
                "tvmfast: freeze() needs the number of arguments: bind(..., num_args=N), "
                "or call the function once first")
        return FrozenFunction(self, frozen, n)

    def prepare(self, *args):
        """Pre-pack every argument: ``p = f.prepare(a, b, c); p()`` calls ``f(a, b, c)``.

        The tensors are kept alive and their DLTensors built once; later changes of
        their *contents* are seen, in-place storage changes (``resize_``, ``set_``)
        are not (a changed shape is detected and raises).
        """
        if self.num_args >= 0 and len(args) != self.num_args:
            raise_count_error(self.num_args, len(args))
        return FrozenFunction(self, dict(enumerate(args)), len(args))

    def as_torch_op(self, name, mutates_args=(), example_args=None):
        """Register this function as a torch custom op (``torch.library``) and return it.

        ``name`` is ``"namespace::op"``; ``mutates_args`` are the positions of the
        tensors the kernel writes (its outputs). Arguments are tensors unless
        ``example_args`` shows ints, floats or bools. The op returns None, like the
        kernel; its fake implementation lets ``torch.compile(..., fullgraph=True)``
        trace through it without a graph break.
        """
        from tvmfast.torch_op import make_torch_op
        return make_torch_op(self, name, mutates_args, example_args)

    def __repr__(self):
        return f"<tvmfast.BoundFunction num_args={self.num_args} release_gil={bool(self.release_gil)}>"
