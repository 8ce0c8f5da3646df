# BoundFunction: bind() resolves a TVM function once; each call converts its
# arguments into a call context on the C stack and calls it (one vectorcall, no
# argument tuple; the type's vectorcall slot is tvmfast_bound_entry, spine/frame.h, which
# calls bound_vectorcall and raises a callee's error it returns).

cdef object bound_vectorcall(PyObject* callable, void** args, size_t nargsf, PyObject* kwnames):
    cdef BoundFunction fn = <BoundFunction>callable
    if kwnames != NULL and PyTuple_GET_SIZE(kwnames) != 0:
        if fn.wrapper is not None:
            return call_wrapper(fn, args, PyVectorcall_NARGS(nargsf), <tuple>kwnames)
        raise TypeError("tvmfast: bound functions take positional arguments only")
    check_bound(fn)
    return bound_call(fn, args, PyVectorcall_NARGS(nargsf))


cdef object call_wrapper(BoundFunction fn, void** args, Py_ssize_t n, tuple kwnames):
    """The bound object's own call (keywords, defaults, its own conversions)."""
    cdef Py_ssize_t i
    kwargs = {}
    if kwnames is not None:
        for i in range(len(kwnames)):  # keyword values follow the n positional ones
            kwargs[kwnames[i]] = <object>args[n + i]
    return fn.wrapper(*[<object>args[i] for i in range(n)], **kwargs)


cdef inline int check_bound(BoundFunction fn) except -1:
    if fn.target.handle == NULL:
        raise_api_error(TypeError, "BoundFunction", "not initialized; create it with tvmfast.bind()")
    return 0


cdef object resolve_function(obj, name):
    """(tvm_ffi.Function, whether it comes from a module) for a module, a function, a
    library path or an object that wraps a function (tvm_ffi's __tvm_ffi_object__)."""
    if isinstance(obj, tvm_ffi.Function):
        if name is not None:
            raise_api_error(TypeError, "bind", "name= is only for modules and library paths")
        return obj, False
    if not isinstance(obj, (tvm_ffi.Module, str, os.PathLike)) and hasattr(type(obj), "__tvm_ffi_object__"):
        func = obj.__tvm_ffi_object__()
        if isinstance(func, tvm_ffi.Function):
            if name is not None:
                raise_api_error(TypeError, "bind", "name= is only for modules and library paths")
            return func, False
        raise_api_error(TypeError, "bind", f"{type(obj).__qualname__}.__tvm_ffi_object__() gave "
                                           f"{type(func).__qualname__}, not a tvm_ffi.Function")
    if isinstance(obj, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(obj))
        if not os.path.exists(path):
            raise_api_error(FileNotFoundError, "bind", f"no such library: {path}")
        obj = tvm_ffi.load_module(path)
    if isinstance(obj, tvm_ffi.Module):
        if name is None:
            name = getattr(obj, "entry_name", None) or "main"
        try:
            return obj.get_function(name, query_imports=True), True
        except AttributeError:
            raise_api_error(AttributeError, "bind", f"the module has no function named {name!r}")
    getter = getattr(obj, "__getitem__", None)
    if getter is not None and name is not None:  # e.g. relax.VirtualMachine
        func = getter(name)
        if isinstance(func, tvm_ffi.Function):
            return func, False
    hint = ""
    if callable(obj):
        hint = (". A Python callable is called by Python already; to pass it where a tvm_ffi.Function is "
                "expected, wrap it: tvm_ffi.convert(fn)")
    raise_api_error(TypeError, "bind", f"expected a TVM runtime module, a tvm_ffi.Function or a library path; "
                                       f"got {type(obj).__qualname__}{hint}")


cdef class BoundFunction:
    """A TVM function bound for cheap calls: ``f(*args)`` == ``rt_mod(*args)``.

    Create with :func:`tvmfast.bind`.  Tensors (torch, numpy, tvm_ffi or any DLPack
    C exchange API producer), int, float, bool, str and None are converted by
    tvmfast; any other argument makes tvm_ffi convert and make the call, so results
    and errors are those of ``rt_mod(*args)``.
    """

    def __cinit__(self):
        self.vectorcall = <void*>tvmfast_bound_entry
        self.target.handle = NULL
        self.declared_args = -1
        self.seen_num_args = -1

    def __init__(self, obj, name=None, *, num_args=None, release_gil=None, alignment=None):
        if self.target.handle != NULL:
            # Frozen functions made from it, and calls on other threads, rely on its state.
            raise_api_error(TypeError, "BoundFunction", "already initialized; bind() a new one")
        if alignment is not None and (type(alignment) is not int or alignment < 1 or alignment > MAX_ALIGNMENT
                                      or alignment & (alignment - 1)):
            raise_api_error(ValueError, "bind", f"alignment must be a power of two from 1 to {MAX_ALIGNMENT}, "
                                                f"got {alignment!r}")
        if num_args is not None and (type(num_args) is not int or not 0 <= num_args):
            raise_api_error(ValueError, "bind", f"num_args must be an int >= 0, got {num_args!r}")
        function, from_module = resolve_function(obj, name)
        self.direct_args = -1
        overrides_call = (isinstance(obj, tvm_ffi.Function)
                          and getattr(type(obj), "__call__", None) is not tvm_ffi.Function.__call__)
        if overrides_call or (function is not obj and hasattr(type(obj), "__tvm_ffi_object__") and callable(obj)):
            # An object that wraps the function (a CuTe DSL compiled kernel): its own call
            # stays the reference.  Plain positional calls go straight to the function
            # where the wrapper passes them through unchanged; others go to the wrapper.
            self.wrapper = obj
            self.direct_args = _wrapper_direct_args(obj)
            if self.direct_args >= 0:
                self.seen_num_args = self.direct_args
        if isinstance(obj, (str, os.PathLike)):
            self.bind_args = (os.path.abspath(os.fspath(obj)), name)
        if alignment is None:
            # Functions of a TVM module are compiled kernels whose default buffers
            # assume 64-byte aligned data; a bare tvm_ffi.Function is taken as
            # rt_mod takes it.
            alignment = DEFAULT_ALIGNMENT if from_module else 1
        self.function = function
        self.target.align_mask = <uint64_t>(alignment - 1)
        if release_gil is None:
            # As tvm_ffi calls it (Function.release_gil, on by default): a callee whose
            # worker threads need the GIL (a Python callback, a kept tensor's release)
            # would otherwise deadlock where rt_mod returns.
            release_gil = getattr(function, "release_gil", True)
        self.target.release_gil = bool(release_gil)
        self.declared_args = -1 if num_args is None else num_args
        self.from_module = from_module
        # A Relax VM knows its functions' arity: freeze() and as_torch_op() can use it.
        arity = getattr(obj, "_get_function_arity", None)
        if name is not None and arity is not None:
            try:
                self.seen_num_args = int(arity(name))
            except Exception:
                pass
        # Last: a non-NULL handle marks the object usable (the function keeps it alive).
        self.target.handle = <TVMFFIObjectHandle><uint64_t>function.__chandle__()

    @property
    def release_gil(self):
        """Whether the GIL is released around the C call (settable)."""
        return bool(self.target.release_gil)

    @release_gil.setter
    def release_gil(self, value):
        self.target.release_gil = bool(value)

    @property
    def num_args(self):
        """The argument count when known (bind's num_args, a Relax VM's arity, or the
        last successful call's count), else None."""
        n = known_arity(self)
        return n if n >= 0 else None

    @property
    def arity(self):
        """The same as num_args."""
        return self.num_args

    @property
    def alignment(self):
        """Data alignment in bytes the callee is given (misaligned CPU tensors are copied)."""
        return self.target.align_mask + 1

    def __call__(self, *args):
        # Only PyObject_Call with a ready tuple lands here; plain calls use vectorcall.
        return reraise_if_failure(
            bound_vectorcall(<PyObject*>self, <void**>PySequence_Fast_ITEMS(args), len(args), NULL))

    def freeze(self, frozen):
        """Fix some arguments: ``g = f.freeze({0: a, 3: zeros}); g(x, y)``.

        ``frozen`` maps argument positions to values; tvmfast keeps its own copy of
        the mapping (and so references to the values).  The result takes the
        remaining arguments in order and calls ``f`` with the frozen objects as
        they are at that moment.  Needs ``num_args`` (given to :func:`bind`, or
        learned from a successful call).
        """
        check_bound(self)
        check_direct(self, "freeze")
        if not isinstance(frozen, dict):
            raise_api_error(TypeError, "freeze", f"takes a dict {{position: value}}, got {type(frozen).__qualname__}")
        cdef int n = known_arity(self)
        if n < 0:
            raise_api_error(
                ValueError, "freeze",
                "needs the number of arguments: bind(..., num_args=N), or call the function once first")
        return FrozenFunction(self, frozen, n)

    def prepare(self, *args):
        """Freeze every argument: ``p = f.prepare(a, b, c); p()`` calls ``f(a, b, c)``."""
        check_bound(self)
        # The count given to bind, or learned from a TVM module's function (whose arity is
        # fixed; a bare tvm_ffi.Function may take any count).
        cdef int n = known_arity(self) if self.from_module else self.declared_args
        check_direct(self, "prepare")
        if n >= 0 and len(args) != n:
            # Caught here rather than at p(): the count is known (given, or learned).
            raise_api_error(TypeError, "prepare", f"the function takes {plural(n, 'argument')}, got {len(args)}")
        return FrozenFunction(self, dict(enumerate(args)), len(args))

    def as_torch_op(self, name, mutates_args=(), example_args=None, **options):
        """Register this function as a torch custom op (``torch.library``) and return it.

        ``name`` is ``"namespace::op"``; ``mutates_args`` are the positions of the tensors
        the function writes; ``example_args`` (or the known arity) gives the argument
        kinds, ints declared ``SymInt``.  Without ``returns=`` the op returns None (an
        out-variant); ``returns=`` gives the output spec of a function that allocates its
        result (a Relax VM); ``outputs={position: spec}`` makes a functional op of an
        out-variant function (``tvmfast.alloc``: each call allocates those outputs, in C, and
        returns them).  Differentiable use raises unless a backward is registered
        (``torch.library.register_autograd``); see ``tvmfast.torch_op.make_torch_op``.
        """
        check_bound(self)
        from tvmfast.torch_op import make_torch_op
        return make_torch_op(self, name, mutates_args, example_args, **options)

    def __reduce__(self):
        """Pickled as the library path it was bound from, re-bound when loaded (e.g. in a
        spawn worker); a function bound from an in-memory module cannot travel."""
        check_bound(self)
        if self.bind_args is None:
            raise_api_error(
                TypeError, "BoundFunction",
                "cannot be pickled: it was not bound from a library path. Export the module "
                "(rt_mod.export_library(path)) and bind(path) to get one that pickles by re-binding")
        path, name = self.bind_args
        return (_rebind, (path, name, None if self.declared_args < 0 else self.declared_args, self.release_gil,
                          self.alignment))

    def __repr__(self):
        if self.target.handle == NULL:
            return "<tvmfast.BoundFunction (not initialized)>"
        return (f"<tvmfast.BoundFunction num_args={self.num_args} release_gil={self.release_gil} "
                f"alignment={self.alignment}>")


cdef object bound_call(BoundFunction self, void** items, Py_ssize_t n):
    """A dynamic call: every argument converted into one call context, then called."""
    cdef CallContext ctx
    cdef Py_ssize_t i
    if self.wrapper is not None and n != self.direct_args:
        return call_wrapper(self, items, n, None)
    if self.declared_args >= 0 and n != self.declared_args:
        if not self.from_module:
            raise_count_error(self.declared_args, n)
        # A TVM module's functions check their arity first and say their signature: the
        # call is theirs to refuse (the same error as rt_mod's).
    if not call_converts_itself(items, n):
        ctx_open_or_raise(&ctx, n, self.target.align_mask)
        try:
            for i in range(n):
                if convert_arg(<PyObject*>items[i], i, &ctx.packed[i], &ctx) == LEFT_TO_TVM_FFI:
                    break  # changed by Python code the conversion ran (see spine/convert.pxi)
            else:
                ret = call_from_python(&self.target, &ctx, <int32_t>n, True)
                if type(ret) is not CallFailure:
                    self.seen_num_args = <int>n  # learned from a call that succeeded
                return ret
        finally:
            ctx_close(&ctx)
    ret = call_with_tvm_ffi(self.function, items, n)
    self.seen_num_args = <int>n
    return ret


cdef int check_direct(BoundFunction self, str api) except -1:
    if self.wrapper is not None and self.direct_args < 0:
        raise_api_error(TypeError, api, f"{type(self.wrapper).__qualname__} converts its arguments itself "
                                        f"(keyword-only parameters, dataclasses or pointers): call it as f(...)")
    return 0


cdef inline int known_arity(BoundFunction self) noexcept:
    return self.declared_args if self.declared_args >= 0 else self.seen_num_args


def _wrapper_direct_args(obj):
    """How many positional arguments obj (which wraps a tvm_ffi.Function) passes to the
    function unchanged, or -2 when tvmfast cannot tell (every call goes to obj then).

    The protocol: ``type(obj).__tvm_ffi_object__`` gives the function; a CuTe DSL compiled
    kernel's keyword wrapper (``_kwargs_wrapper``, generated by tvm_ffi's
    ``make_kwargs_wrapper``) passes a call of all its positional parameters through as
    is unless it has keyword-only parameters or unpacks dataclasses, and its pointer
    arguments are converted only when ``execution_args.has_pointer_address_arg_specs``."""
    execution_args = getattr(obj, "execution_args", None)
    if getattr(execution_args, "has_pointer_address_arg_specs", False):
        return -2
    wrapper = getattr(obj, "_kwargs_wrapper", None)
    code = getattr(wrapper, "__code__", None)
    if code is None:
        return -2
    if code.co_kwonlyargcount or code.co_flags & 0x0C or "__i_unpack" in code.co_names:
        return -2  # keyword-only or variadic parameters, dataclass unpacking: the wrapper's
    return code.co_argcount


def _rebind(path, name, num_args, release_gil, alignment):
    """Unpickle a BoundFunction: bind the library at path again."""
    return BoundFunction(path, name, num_args=num_args, release_gil=release_gil, alignment=alignment)
