/* Benchmark hooks, compiled out of a normal build. */
#ifndef TVMFAST_MEASURE_TRACE_H_
#define TVMFAST_MEASURE_TRACE_H_

#include <cstdint>

/* Stage timing, for `python -m bench.stages` only.  In a build with -DTVMFAST_TRACE each
 * stamp adds the clock ticks since the previous stamp to its stage's counter (process-wide
 * counters, meant to be read by one benchmarking thread); in every other build the stamps
 * are empty inline functions and the call path is unchanged. */
enum TvmfastStage {
  TVMFAST_STAGE_START = 0,   /* counts calls; the clock starts */
  TVMFAST_STAGE_OPEN,        /* the call context opened */
  TVMFAST_STAGE_CONVERT,     /* the arguments converted (tensors exported) */
  TVMFAST_STAGE_DEVICES,     /* devices checked, the stream picked, misaligned data copied */
  TVMFAST_STAGE_ENV,         /* TVM's stream and allocator made the producer's */
  TVMFAST_STAGE_GIL_RELEASE, /* the GIL released (0 with release_gil=False) */
  TVMFAST_STAGE_CALL,        /* TVMFFIFunctionCall */
  TVMFAST_STAGE_GIL_ACQUIRE, /* the GIL taken back */
  TVMFAST_STAGE_RESULT,      /* the result converted */
  TVMFAST_STAGE_CLOSE,       /* the environment restored, copies settled, the call's tensors released */
  TVMFAST_NUM_STAGES
};
static uint64_t tvmfast_stage_ticks[TVMFAST_NUM_STAGES];
#ifdef TVMFAST_TRACE
#define TVMFAST_TRACE_ENABLED 1
#if defined(__x86_64__)
#include <x86intrin.h>
static inline uint64_t tvmfast_stage_clock() noexcept { return __rdtsc(); }
#else
#include <chrono>
static inline uint64_t tvmfast_stage_clock() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch()).count();
}
#endif
static uint64_t tvmfast_stage_last;
static inline void tvmfast_stamp(int stage) noexcept {
  uint64_t now = tvmfast_stage_clock();
  tvmfast_stage_ticks[stage] += stage == TVMFAST_STAGE_START ? 1 : now - tvmfast_stage_last;
  tvmfast_stage_last = now;
}
#else
#define TVMFAST_TRACE_ENABLED 0
static inline uint64_t tvmfast_stage_clock() noexcept { return 0; }
static inline void tvmfast_stamp(int stage) noexcept { (void)stage; }
#endif

#endif  // TVMFAST_MEASURE_TRACE_H_
