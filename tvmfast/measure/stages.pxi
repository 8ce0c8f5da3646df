# Stage timing, for `python -m bench.stages` only: what measure/trace.h's stamps counted.
# In a normal build the stamps are empty and these say so.

def _stage_ticks():
    """Benchmarks only (bench.stages): the clock ticks spent in each stage of the calls made
    so far, with the number of calls first; None unless built with -DTVMFAST_TRACE."""
    if not TVMFAST_TRACE_ENABLED:
        return None
    return [tvmfast_stage_ticks[i] for i in range(<int>TVMFAST_NUM_STAGES)]


def _stage_stamp_ticks(int n=20000):
    """Benchmarks only: the clock ticks one stamp adds to its stage (the mean over n runs of
    a call's stamps made back to back); 0.0 in an untraced build."""
    if not TVMFAST_TRACE_ENABLED or n <= 0:
        return 0.0
    cdef uint64_t saved[<int>TVMFAST_NUM_STAGES]
    cdef uint64_t total = 0
    cdef int i, k
    for k in range(<int>TVMFAST_NUM_STAGES):
        saved[k] = tvmfast_stage_ticks[k]
        tvmfast_stage_ticks[k] = 0
    for i in range(n):
        for k in range(<int>TVMFAST_NUM_STAGES):
            tvmfast_stamp(k)
    for k in range(1, <int>TVMFAST_NUM_STAGES):
        total += tvmfast_stage_ticks[k]
        tvmfast_stage_ticks[k] = saved[k]
    tvmfast_stage_ticks[0] = saved[0]
    return total / (<double>n * (<int>TVMFAST_NUM_STAGES - 1))


def _stage_clock():
    """Benchmarks only: the stage clock now, in ticks (0 in an untraced build)."""
    return tvmfast_stage_clock()
