# One-time set-ups: what tvmfast learns about torch at first use (torch_export.pxi's
# layout and direct export, native_op.pxi's probe).  Each runs once per process, in one
# thread, and is:
# * reentrant: a tvmfast call made from inside the set-up itself (a torch mode, a
#   callback, a signal handler) does not wait for it; it proceeds as if the set-up had
#   not happened (the paths that need nothing learned);
# * independent of the caller's torch state: it runs with torch's function and dispatch
#   modes off, grad mode on and inference mode off (tvmfast._torch.setup_scope), so what
#   it learns and self-tests is torch's plain behaviour whatever the first call's context;
# * fork-safe: a child forked while another thread was inside it (a thread that does not
#   exist in the child) gets a fresh lock and the state from before the set-up, and runs
#   it again at its next use (_after_fork_in_child below).
# Other threads arriving meanwhile wait for it (with the GIL released): they must not
# work from half-learned state.

cdef class OneTimeSetup:
    cdef object lock
    cdef unsigned long runner    # ident of the thread running the set-up; 0 when none
    cdef bint done
    cdef object reset            # puts the state back as before the set-up (a fork child)

    def __cinit__(self, reset):
        self.lock = threading.Lock()
        self.runner = 0
        self.done = False
        self.reset = reset

    cdef bint run(self, setup) except -1:
        """Run setup() unless it ran already.  True once it has run (here or earlier),
        False in a call made from inside the set-up itself."""
        if self.done:
            return True
        me = threading.get_ident()
        if self.runner == me:
            return False
        with self.lock:
            if not self.done:
                self.runner = me
                try:
                    setup()
                finally:
                    self.runner = 0
                    self.done = True  # last: other threads use the state only after this
        return True

    cdef void after_fork_in_child(self) except *:
        """In a fork child: a set-up left half-done by a thread that does not exist here
        starts again (its lock, held by that thread, is replaced)."""
        if self.runner != 0 and self.runner != threading.get_ident():
            self.lock = threading.Lock()
            self.runner = 0
            self.reset()


cdef list one_time_setups = []


cdef OneTimeSetup one_time_setup(reset):
    cdef OneTimeSetup setup = OneTimeSetup(reset)
    one_time_setups.append(setup)
    return setup


def _after_fork_in_child():
    """os.register_at_fork's after_in_child: the set-ups, then the native ops' counters."""
    cdef OneTimeSetup setup
    for setup in one_time_setups:
        setup.after_fork_in_child()
    native_op_after_fork_in_child()
