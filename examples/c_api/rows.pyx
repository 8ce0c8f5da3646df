# cython: language_level=3
"""Call a prepared TVM kernel from C, without the GIL, through tvmfast's C-level API."""
from libc.stdint cimport uintptr_t

from tvmfast._core cimport FrozenFunction, tvmfast_call_ptrs


def add_rows(FrozenFunction prepared, uintptr_t a, uintptr_t b, uintptr_t out, int rows, int row_bytes):
    cdef void* ptrs[3]
    cdef int r, ret = 0
    with nogil:
        for r in range(rows):
            ptrs[0] = <void*>(a + r * row_bytes)
            ptrs[1] = <void*>(b + r * row_bytes)
            ptrs[2] = <void*>(out + r * row_bytes)
            ret = tvmfast_call_ptrs(prepared, ptrs, 3)
            if ret != 0:
                break
    if ret != 0:
        prepared.raise_last_error()   # the TVM error, as rt_mod would raise it
