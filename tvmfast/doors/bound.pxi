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
    """(tvm_ffi.Function, the tvm_ffi.Module it was taken from or None) for a module (or a
    tvm.compile Executable), a function, a library path or an object that wraps a function
    (tvm_ffi's __tvm_ffi_object__)."""
    if isinstance(obj, tvm_ffi.Function):
        if name is not None:
            raise_api_error(TypeError, "bind", "name= is only for modules and library paths")
        return obj, None
    if not isinstance(obj, (tvm_ffi.Module, str, os.PathLike)) and hasattr(type(obj), "__tvm_ffi_object__"):
        func = obj.__tvm_ffi_object__()
        if isinstance(func, tvm_ffi.Function):
            if name is not None:
                raise_api_error(TypeError, "bind", "name= is only for modules and library paths")
            return func, None
        raise_api_error(TypeError, "bind", f"{type(obj).__qualname__}.__tvm_ffi_object__() gave "
                                           f"{type(func).__qualname__}, not a tvm_ffi.Function")
    path = None
    executable = sys.modules.get("tvm.runtime.executable")
    if executable is not None and isinstance(obj, getattr(executable, "Executable", ())):
        # tvm.compile's result: ex(*args) and ex[name] call the functions of its jitted
        # module (built once, cached by the Executable), which is what is bound.
        obj = obj.jit()
    if isinstance(obj, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(obj))
        if not os.path.exists(path):
            raise_api_error(FileNotFoundError, "bind", f"no such library: {path}")
        obj = tvm_ffi.load_module(path)
    if isinstance(obj, tvm_ffi.Module):
        if name is None:
            name = getattr(obj, "entry_name", None) or "main"
        try:
            return obj.get_function(name, query_imports=True), obj
        except AttributeError:
            raise_api_error(AttributeError, "bind", f"the module has no function named {name!r}"
                                                    f"{_functions_hint(obj, path)}")
    getter = getattr(obj, "__getitem__", None)
    if getter is not None and name is not None:  # e.g. relax.VirtualMachine
        func = getter(name)
        if isinstance(func, tvm_ffi.Function):
            return func, None
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

    ``copy.copy(f)`` and ``copy.deepcopy(f)`` give a new BoundFunction of the same
    function with the same options (its ``release_gil`` set apart from ``f``'s); pickling
    re-binds a library path (see ``__reduce__``).  Under ``torch.compile`` a call is a
    graph break (an error with ``fullgraph=True``): register it with ``as_torch_op``.
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
        function, module = resolve_function(obj, name)
        from_module = module is not None
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
            # TVM-compiled kernels (default buffers) assume 64-byte aligned data and crash on
            # less; anything else (C++ functions, Python callbacks, a Relax VM) is taken as
            # rt_mod takes it.  Decided by the function, not by how it was looked up, so
            # bind(mod, "f") and bind(mod.f) agree (see _compiled_by_tvm).
            alignment = default_alignment(function, module, name)
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

    def __copy__(self):
        """A new BoundFunction bound to the same function with the same options (num_args,
        alignment, release_gil, what was learned of the arity): setting ``release_gil`` on the
        copy leaves this one as it is.  (The tvm_ffi.Function itself is shared: it is immutable.)"""
        check_bound(self)
        return clone_bound(self)

    def __deepcopy__(self, memo):
        """The same as ``copy.copy(f)``: a bound function holds no data to copy, and its
        tvm_ffi.Function (compiled code and the module that owns it) is shared, not copied."""
        check_bound(self)
        return clone_bound(self)

    def __repr__(self):
        if self.target.handle == NULL:
            return "<tvmfast.BoundFunction (not initialized)>"
        return (f"<tvmfast.BoundFunction num_args={self.num_args} release_gil={self.release_gil} "
                f"alignment={self.alignment}>")


cdef BoundFunction clone_bound(BoundFunction self):
    """A BoundFunction with self's function and state (copy.copy, copy.deepcopy)."""
    cdef BoundFunction other = BoundFunction.__new__(BoundFunction)
    other.function = self.function
    other.wrapper = self.wrapper
    other.direct_args = self.direct_args
    other.bind_args = self.bind_args
    other.declared_args = self.declared_args
    other.seen_num_args = self.seen_num_args
    other.from_module = self.from_module
    other.target.align_mask = self.target.align_mask
    other.target.release_gil = self.target.release_gil
    other.target.handle = self.target.handle  # last: marks it usable (other.function keeps it alive)
    return other


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


# ---------------------------------------------------------------------------------------------
# Which functions assume 64-byte aligned data: TVM-compiled kernels, however they were looked up.
#
# tvm_ffi says nothing about where a Function comes from, but a Function's C object does: its
# call slot (TVMFFIFunctionCell.safe_call) is one static function per kind of closure.  Two kinds
# matter, and each is recognised by comparing that slot with one of a reference function:
# * a library module's function (tvm_ffi's LibraryModuleObj: a TVM kernel exported and loaded, a
#   load_inline or other C++ library), whose closure holds [the symbol's address, the module]:
#   the address names the library file (dladdr), and the file says who built it (a C++ library
#   built against tvm_ffi links libtvm_ffi; TVM's exported kernels link nothing);
# * a kernel of a module TVM compiled in memory (tvm.compile, tvm.tirx.build: an "llvm" module).
# The references come from a module bound by name (bind(mod, "f") teaches the kind of closure of
# its module, checked against the module's own handle and the symbol's name), else from tvm_ffi's
# own test library (libtvm_ffi_testing, a library module) and from a one-line kernel TVM compiles
# (~10 ms, once, only when a function's code lies in TVM's libraries).  Where neither applies, or
# a check fails, the rule is the old one: 64 for a function taken from a module, 1 otherwise.
# ---------------------------------------------------------------------------------------------

cdef str FFI_SYMBOL_PREFIX = "__tvm_ffi_"
cdef dict _closure_calls = {}        # "library" / "tvm" -> safe_call address (0: unknown for good)
cdef dict _library_verdicts = {}     # library path -> True (built by TVM), False (C++), None (unknown)


cdef inline uintptr_t* function_cell(object function):
    """The words after a tvm_ffi.Function's object header: safe_call, cpp_call, then the
    closure's own fields (read only once the kind of closure is known)."""
    return <uintptr_t*>(<char*><uintptr_t>function.__chandle__() + sizeof(TVMFFIObject))


cdef int default_alignment(object function, object module, object name) except 0:
    if module is not None and name is None:
        name = getattr(module, "entry_name", None) or "main"
    try:
        verdict = _compiled_by_tvm(function, module, name)
    except Exception:
        verdict = None
    if verdict is None:
        return DEFAULT_ALIGNMENT if module is not None else 1
    return DEFAULT_ALIGNMENT if verdict else 1


def _compiled_by_tvm(function, module=None, name=None):
    """True when ``function`` is a TVM-compiled kernel (its default buffers assume 64-byte aligned
    data), False when it is not, None when tvmfast cannot tell.  ``module``: the module it was
    just taken from by ``name``, if any."""
    cdef uintptr_t* cell = function_cell(function)
    cdef uintptr_t safe_call = cell[0]
    if module is not None:
        kind = module.kind
        if kind != "library":
            # A module of TVM's own (llvm: host code TVM generated, with any device code imported).
            _learn_tvm_closure(function, module, name)
            return True
        _learn_library_closure(function, module, name)
    library_call = _library_closure_call()
    if library_call and safe_call == library_call:
        return _library_built_by_tvm(_dladdr(cell[2])[0])
    tvm_call = _tvm_closure_call(safe_call)
    if tvm_call and safe_call == tvm_call:
        return True
    if module is not None or not library_call:
        return None
    return False


cdef _learn_library_closure(object function, object module, object name):
    """Learn the kind of closure of a library module's functions from one taken from ``module``
    (a LibraryModuleObj) by ``name``: [address of __tvm_ffi_<name>, the module] after its cell."""
    if _closure_calls.get("library") or not module.implements_function(name):  # not one of an import's
        return
    cdef uintptr_t* cell = function_cell(function)
    if cell[3] != <uintptr_t>module.__chandle__():
        return
    path, symbol, address = _dladdr(cell[2])
    if path is not None and address == cell[2] and symbol is not None and symbol.endswith(FFI_SYMBOL_PREFIX + name):
        _closure_calls["library"] = cell[0]


cdef _learn_tvm_closure(object function, object module, object name):
    """Learn the kind of closure of TVM's compiled kernels from one taken from a module TVM built
    in memory: only for a name the module lists as a compiled function."""
    if _closure_calls.get("tvm") or module.kind != "llvm":
        return
    names = _tvm_module_function_names(module)
    if names and name in names:
        _closure_calls["tvm"] = function_cell(function)[0]


cdef uintptr_t _library_closure_call() except? 0:
    if "library" not in _closure_calls:
        _closure_calls["library"] = 0
        try:
            import glob
            import tvm_ffi.libinfo
            folder = os.path.dirname(tvm_ffi.libinfo.find_libtvm_ffi())
            for path in sorted(glob.glob(os.path.join(folder, "libtvm_ffi_testing.*"))):
                name = "testing_dll_schema_id_int"
                reference_module = tvm_ffi.load_module(path)
                if reference_module.implements_function(name):
                    _learn_library_closure(reference_module.get_function(name), reference_module, name)
                    break
        except Exception:
            pass
    return _closure_calls["library"]


cdef uintptr_t _tvm_closure_call(uintptr_t safe_call) except? 0:
    """The call slot of TVM's compiled kernels, learned (from a module bound by name, or from a
    one-line kernel compiled here) when safe_call lies in one of TVM's libraries; else 0."""
    known = _closure_calls.get("tvm")
    if known is not None:
        return known
    path = _dladdr(safe_call)[0]
    base = os.path.basename(path or "")
    tvm = sys.modules.get("tvm")
    if tvm is None or not base.startswith("libtvm") or base.startswith("libtvm_ffi"):
        return 0
    _closure_calls["tvm"] = 0
    try:
        tir = getattr(tvm, "tirx", None) or tvm.tir
        build = getattr(tir, "build", None) or tvm.build
        reference = tir.PrimFunc([], tir.Evaluate(tir.const(0, "int32"))).with_attr(
            "global_symbol", "tvmfast_reference_kernel")
        reference_module = build(reference, target="llvm")
        _learn_tvm_closure(reference_module.get_function("tvmfast_reference_kernel"), reference_module,
                           "tvmfast_reference_kernel")
    except Exception:
        pass
    return _closure_calls["tvm"]


_dladdr_function = None


def _dladdr(address):
    """(path, symbol, symbol address) of the loaded file that holds ``address`` (dladdr), Nones
    where unknown."""
    global _dladdr_function
    if not address:
        return None, None, None
    if _dladdr_function is None:
        class DlInfo(ctypes.Structure):
            _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                        ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
        function = ctypes.CDLL(None).dladdr
        function.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
        function.restype = ctypes.c_int
        _dladdr_function = (function, DlInfo)
    function, DlInfo = _dladdr_function
    info = DlInfo()
    if not function(address, ctypes.byref(info)):
        return None, None, None
    return (os.fsdecode(info.fname) if info.fname else None, os.fsdecode(info.sname) if info.sname else None,
            info.saddr)


def _library_built_by_tvm(path):
    """Whether the library at path was compiled by TVM (True), is a C++ library built against
    tvm_ffi (False: it links libtvm_ffi, which TVM's exported kernels never do), or None."""
    if not path:
        return None
    if path not in _library_verdicts:
        info = _elf_dynamic_info(path)
        _library_verdicts[path] = None if info is None else not any(
            needed.startswith("libtvm_ffi") for needed in info[0])
    return _library_verdicts[path]


def _elf_dynamic_info(path):
    """(the libraries an ELF shared library needs, the tvm_ffi functions it exports), or None for
    a file that is not one (a macOS .dylib) or cannot be read."""
    import struct
    try:
        with open(path, "rb") as fh:
            ident = fh.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                return None
            wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
            header = fh.read(48 if wide else 36)
            if wide:
                shoff, = struct.unpack_from(order + "Q", header, 24)
                shentsize, shnum = struct.unpack_from(order + "HH", header, 42)
                section_format, symbol_format, dyn_format = order + "IIQQQQIIQQ", order + "IBBHQQ", order + "qQ"
            else:
                shoff, = struct.unpack_from(order + "I", header, 16)
                shentsize, shnum = struct.unpack_from(order + "HH", header, 30)
                section_format, symbol_format, dyn_format = order + "IIIIIIIIII", order + "IIIBBH", order + "iI"
            if not shoff or not shnum or shentsize < struct.calcsize(section_format):
                return None
            fh.seek(shoff)
            table = fh.read(shentsize * shnum)
            sections = [struct.unpack_from(section_format, table, i * shentsize) for i in range(shnum)]

            def contents(section):
                fh.seek(section[4])
                return fh.read(section[5])

            def string(strings, offset):
                end = strings.find(b"\0", offset)
                return strings[offset:end if end >= 0 else len(strings)].decode("utf-8", "replace")

            needed, functions = [], []
            for section in sections:
                kind, link = section[1], section[6]
                if kind == 6 and link < shnum:  # SHT_DYNAMIC: DT_NEEDED entries
                    data, strings = contents(section), contents(sections[link])
                    size = struct.calcsize(dyn_format)
                    for i in range(len(data) // size):
                        tag, value = struct.unpack_from(dyn_format, data, i * size)
                        if tag == 0:
                            break
                        if tag == 1:
                            needed.append(string(strings, value))
                elif kind == 11 and link < shnum:  # SHT_DYNSYM: the exported symbols
                    data, strings = contents(section), contents(sections[link])
                    size = struct.calcsize(symbol_format)
                    for i in range(len(data) // size):
                        fields = struct.unpack_from(symbol_format, data, i * size)
                        name_offset, shndx = fields[0], (fields[3] if wide else fields[5])
                        name = string(strings, name_offset)
                        if shndx != 0 and name.startswith(FFI_SYMBOL_PREFIX) and not name.startswith(
                                FFI_SYMBOL_PREFIX + "_"):
                            functions.append(name[len(FFI_SYMBOL_PREFIX):])
            return needed, sorted(set(functions))
    except (OSError, struct.error, IndexError, ValueError):
        return None


def _tvm_module_function_names(module):
    """The functions a module TVM built in memory compiled (its get_func_names), or None."""
    try:
        names = module.get_function("get_func_names")()
    except Exception:
        return None
    return sorted({n[len(FFI_SYMBOL_PREFIX):] if n.startswith(FFI_SYMBOL_PREFIX) else n for n in names})


def _functions_hint(module, path=None):
    """What bind's unknown-name error adds: the functions the module has (where tvm_ffi or the
    library file can list them), and how to bind one by name."""
    kind = getattr(module, "kind", None)
    names = None
    if kind == "library":
        if path is not None:  # a loaded library lists nothing; its file does
            info = _elf_dynamic_info(path)
            names = None if info is None else info[1]
    elif kind is not None:
        names = _tvm_module_function_names(module)
    if names is None:
        what = "a loaded library" if kind == "library" else f"a {kind!r} module"
        return (f". tvm_ffi cannot list the functions of {what} (for a library file, "
                f"`nm -D --defined-only LIB | grep {FFI_SYMBOL_PREFIX}` does): bind one by name, "
                f"bind(mod, \"name\")")
    if not names:
        return "; it has no functions"
    return f"; it has {', '.join(repr(n) for n in names)}: bind one by name, bind(mod, {names[0]!r})"


# ---------------------------------------------------------------------------------------------
# torch.compile: Dynamo looks a callable object's __call__ up in its type's dict and, finding a
# slot wrapper, gives up with "Please report an issue to PyTorch".  tvmfast/__init__.py puts a
# Python __call__ there instead (the call slots stay as they are: calls never look it up), marked
# as torch.compiler.disable marks a function, with a reason that names as_torch_op; Dynamo then
# says that (fullgraph=True) or breaks the graph there and calls the function eagerly.
# ---------------------------------------------------------------------------------------------

cdef extern from *:
    """
    static PyObject* tvmfast_type_dict(PyObject* tp) { return ((PyTypeObject*)tp)->tp_dict; }
    static void tvmfast_type_modified(PyObject* tp) { PyType_Modified((PyTypeObject*)tp); }
    """
    PyObject* tvmfast_type_dict(PyObject* tp)
    void tvmfast_type_modified(PyObject* tp)


def _set_python_call(type tp, function):
    """Make ``function`` what ``tp.__call__`` looks up (not what a call runs)."""
    if tp not in (BoundFunction, FrozenFunction):
        raise TypeError(f"not a tvmfast type: {tp!r}")
    cdef PyObject* namespace = tvmfast_type_dict(<PyObject*>tp)
    if namespace == NULL:
        raise TypeError(f"{tp.__qualname__} has no type dict")
    (<dict>namespace)["__call__"] = function
    tvmfast_type_modified(<PyObject*>tp)
