"""Hardware event counts per call (instructions, cycles, cache and TLB misses) of a loop run in
this thread, read with Linux's perf_event_open, as ``perf stat`` would count them but around
one piece of Python.  User-space events only (what the kernel allows unprivileged users with
``perf_event_paranoid`` <= 2).  Where the kernel, a container or the CPU refuses an event,
that event is left out; ``available()`` says whether any can be counted.

    counts = per_call(lambda n: run_n_calls(n), 20_000)   # {"instructions": 1843.2, ...}
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct

_SYSCALL = {"x86_64": 298, "aarch64": 241}.get(platform.machine())
_HARDWARE, _HW_CACHE = 0, 3
_READ, _ACCESS, _MISS = 0, 0, 1


def _cache(cache_id: int, result: int) -> int:
    return cache_id | (_READ << 8) | (result << 16)


# name -> (type, config): perf's generic events (L1I=1, LL=2, DTLB=3, ITLB=4, L1D=0)
EVENTS = {
    "instructions": (_HARDWARE, 1),
    "cycles": (_HARDWARE, 0),
    "branch misses": (_HARDWARE, 5),
    "L1i misses": (_HW_CACHE, _cache(1, _MISS)),
    "L1d misses": (_HW_CACHE, _cache(0, _MISS)),
    "LLC misses": (_HW_CACHE, _cache(2, _MISS)),
    "iTLB misses": (_HW_CACHE, _cache(4, _MISS)),
    "dTLB misses": (_HW_CACHE, _cache(3, _MISS)),
}
_ENABLE, _DISABLE, _RESET = 0x2400, 0x2401, 0x2403
_libc = ctypes.CDLL(None, use_errno=True)


def _open(type_: int, config: int) -> int:
    attr = bytearray(128)
    # type, size, config; flags: disabled | exclude_kernel | exclude_hv (bits 0, 5, 6)
    struct.pack_into("IIQ", attr, 0, type_, len(attr), config)
    struct.pack_into("Q", attr, 40, (1 << 0) | (1 << 5) | (1 << 6))
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    fd = _libc.syscall(_SYSCALL, buf, 0, -1, -1, 0)  # this thread, any CPU
    return fd


def open_events(names=None) -> dict[str, int]:
    """File descriptors of the events this machine lets us count (possibly none)."""
    if _SYSCALL is None or platform.system() != "Linux":
        return {}
    fds = {}
    for name in names or EVENTS:
        fd = _open(*EVENTS[name])
        if fd >= 0:
            fds[name] = fd
    return fds


def why_unavailable() -> str:
    """Why no event can be counted (for the report), or '' when some can."""
    if _SYSCALL is None or platform.system() != "Linux":
        return f"perf_event_open is Linux x86_64/aarch64 only (here {platform.system()} {platform.machine()})"
    fd = _open(*EVENTS["instructions"])
    if fd >= 0:
        os.close(fd)
        return ""
    err = ctypes.get_errno()
    paranoid = "?"
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            paranoid = f.read().strip()
    except OSError:
        pass
    return f"perf_event_open refused: {os.strerror(err)} (perf_event_paranoid {paranoid})"


def available() -> bool:
    return why_unavailable() == ""


def per_call(loop, n: int, names=None) -> dict[str, float]:
    """Events per call of ``loop(n)`` (which makes n calls), the cost of ``loop(0)`` taken off."""
    fds = open_events(names)
    if not fds:
        return {}
    try:
        def run(count: int) -> dict[str, int]:
            for fd in fds.values():
                _libc.ioctl(fd, _RESET, 0)
            for fd in fds.values():
                _libc.ioctl(fd, _ENABLE, 0)
            loop(count)
            for fd in fds.values():
                _libc.ioctl(fd, _DISABLE, 0)
            return {name: struct.unpack("q", os.read(fd, 8))[0] for name, fd in fds.items()}

        run(max(n // 10, 1))  # warm up
        base, full = run(0), run(n)
        return {name: (full[name] - base[name]) / n for name in fds}
    finally:
        for fd in fds.values():
            os.close(fd)
