/* Misaligned CPU data: the geometry and the copy (memory/aligned_copy.pxi is the
 * protocol around a call).  Included by _core.pyx (declared in _c_api.pxd). */
#ifndef TVMFAST_MEMORY_ALIGNED_COPY_H_
#define TVMFAST_MEMORY_ALIGNED_COPY_H_

#include <dlpack/dlpack.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tensor.h"

/* The rule (see _core.pyx, "Lifetime model"): a CPU tensor whose data is not
 * aligned as the callee assumes is handed over as an aligned copy with the same
 * shape, strides and dtype (so TVM's own checks see what rt_mod would pass), only
 * where that copy is indistinguishable from the caller's memory for a kernel:
 *   - only its elements are copied and written back, never the gaps between them
 *     (another argument or other data may live there); negative strides are fine;
 *   - the bytes it spans overlap no other tensor argument of the call, except the
 *     very same elements passed again (an in-place k(x, x)), which then share one
 *     copy as they share memory for rt_mod;
 *   - the callee does not keep the tensor past the call (what it keeps, or a view
 *     it made, would point at the copy): checked after the call, which then raises;
 *   - its span is not much larger than its elements (a column of a wide matrix
 *     would cost a copy of the whole matrix's address range): refused instead.
 * After the call, success or failure, exactly the elements the callee changed are
 * written back: each element of the copy is compared with a pristine snapshot
 * taken at copy time, so an update the caller's side made meanwhile (a callback,
 * another thread) is not reverted. */

/* Bytes one element takes (at least 1: sub-byte types are compared bytewise). */
static inline size_t tvmfast_elem_bytes(const DLTensor* dl) noexcept {
  size_t bits = size_t(dl->dtype.bits) * dl->dtype.lanes;
  return bits < 8 ? 1 : (bits + 7) / 8;
}

static inline int64_t tvmfast_numel(const DLTensor* dl) noexcept {
  int64_t n = 1;
  for (int32_t i = 0; i < dl->ndim; ++i) n *= dl->shape[i];
  return n;
}

/* Whether the elements fill [data, data + bytes) in row-major order (size-1
 * dimensions may have any stride). */
static inline bool tvmfast_is_compact(const DLTensor* dl) noexcept {
  if (dl->strides == NULL) return true;
  int64_t expected = 1;
  for (int32_t i = dl->ndim - 1; i >= 0; --i) {
    if (dl->shape[i] != 1 && dl->strides[i] != expected) return false;
    expected *= dl->shape[i];
  }
  return true;
}

/* Bytes the tensor's elements occupy in a contiguous layout (sub-byte types packed). */
static inline size_t tvmfast_compact_bytes(const DLTensor* dl) noexcept {
  size_t bits = size_t(dl->dtype.bits) * dl->dtype.lanes * size_t(tvmfast_numel(dl));
  return (bits + 7) / 8;
}

/* [*lo, *hi): the bytes any element of a tensor touches, any stride sign (lo == hi
 * for an empty tensor). */
static inline void tvmfast_byte_range(const DLTensor* dl, uintptr_t* lo, uintptr_t* hi) noexcept {
  uintptr_t base = reinterpret_cast<uintptr_t>(dl->data) + dl->byte_offset;
  if (tvmfast_numel(dl) == 0) {
    *lo = *hi = base;
    return;
  }
  if (tvmfast_is_compact(dl)) {
    *lo = base;
    *hi = base + tvmfast_compact_bytes(dl);
    return;
  }
  int64_t elem = int64_t(tvmfast_elem_bytes(dl));
  int64_t low = 0, high = 0;
  for (int32_t i = 0; i < dl->ndim; ++i) {
    int64_t step = (dl->shape[i] - 1) * dl->strides[i] * elem;
    if (step < 0) low += step; else high += step;
  }
  *lo = base + low;
  *hi = base + high + elem;
}

/* Whether two tensors whose byte ranges overlap can still share no byte: every
 * element of both starts at its base plus a multiple of g (the gcd of their byte
 * strides), so if their bases differ by d (mod g) with both elements fitting in
 * between, they interleave without touching (the columns of one matrix, the
 * channels of one image).  A sufficient condition; false when unsure. */
static inline bool tvmfast_interleaved(const DLTensor* x, const DLTensor* y) noexcept {
  uint64_t g = 0;
  const DLTensor* both[2] = {x, y};
  for (const DLTensor* dl : both) {
    int64_t elem = int64_t(tvmfast_elem_bytes(dl)), expected = 1;
    if (size_t(dl->dtype.bits) * dl->dtype.lanes < 8) return false;
    for (int32_t i = dl->ndim - 1; i >= 0; --i) {
      int64_t stride = dl->strides != NULL ? dl->strides[i] : expected;
      expected *= dl->shape[i];
      if (dl->shape[i] <= 1) continue;
      uint64_t step = uint64_t(stride < 0 ? -stride : stride) * uint64_t(elem);
      while (step != 0) { uint64_t r = g % step; g = step; step = r; }
    }
  }
  if (g == 0) return false;
  uintptr_t bx = reinterpret_cast<uintptr_t>(x->data) + x->byte_offset;
  uintptr_t by = reinterpret_cast<uintptr_t>(y->data) + y->byte_offset;
  /* (by - bx) mod g, for either order of the two bases */
  uint64_t d = by >= bx ? uint64_t(by - bx) % g : (g - uint64_t(bx - by) % g) % g;
  return d >= tvmfast_elem_bytes(x) && d + tvmfast_elem_bytes(y) <= g;
}

/* Whether the aligned copy of a misaligned tensor is allowed: 0 yes; 1 a strided
 * tensor of a sub-byte type (its strides count packed elements) or of over 64
 * dimensions; 2 its span is far larger than its elements. */
static inline int tvmfast_copy_refusal(const DLTensor* dl) noexcept {
  if (tvmfast_is_compact(dl)) return 0;
  if (size_t(dl->dtype.bits) * dl->dtype.lanes < 8 || dl->ndim > 64) return 1;
  uintptr_t lo, hi;
  tvmfast_byte_range(dl, &lo, &hi);
  size_t span = hi - lo, elems = tvmfast_compact_bytes(dl);
  return (span > 4 * elems && span > (size_t(1) << 16)) ? 2 : 0;
}

/* Visit every element of a strided tensor: fn(byte offset from its data). */
template <typename Fn>
static inline void tvmfast_for_each_element(const DLTensor* dl, Fn fn) noexcept {
  /* Only dimensions that reach other bytes: a broadcast (stride 0) or size-1 dimension
   * revisits the same element, so an expanded tensor costs its distinct elements only. */
  int64_t shape[64], step[64], index[64] = {0};
  int32_t ndim = 0;
  int64_t elem = int64_t(tvmfast_elem_bytes(dl));
  if (dl->ndim > 64 || tvmfast_numel(dl) == 0) return;
  for (int32_t i = 0; i < dl->ndim; ++i) {
    if (dl->shape[i] > 1 && dl->strides[i] != 0) {
      shape[ndim] = dl->shape[i];
      step[ndim] = dl->strides[i] * elem;
      ++ndim;
    }
  }
  for (;;) {
    int64_t offset = 0;
    for (int32_t i = 0; i < ndim; ++i) offset += index[i] * step[i];
    fn(offset);
    int32_t d = ndim - 1;
    while (d >= 0 && ++index[d] == shape[d]) index[d--] = 0;
    if (d < 0) return;
  }
}

/* Copy t's elements into fresh memory where its data is aligned, laid out with t's own
 * strides: the copy the callee sees, then a pristine snapshot of it (the same
 * layout) to tell afterwards what the callee changed. */
static inline int tvmfast_tensor_copy_in(TvmfastTensor* t, size_t alignment) noexcept {
  uintptr_t lo, hi;
  tvmfast_byte_range(&t->dl, &lo, &hi);
  char* source = static_cast<char*>(t->dl.data) + t->dl.byte_offset;
  size_t lead = size_t(reinterpret_cast<uintptr_t>(source) - lo);  /* > 0 with negative strides */
  size_t shift = (alignment - lead % alignment) % alignment;       /* so that data lands aligned */
  size_t span = hi - lo;
  size_t half = (shift + span + alignment - 1) / alignment * alignment;
  char* scratch = static_cast<char*>(std::aligned_alloc(alignment, half == 0 ? alignment : 2 * half));
  if (scratch == NULL) return -1;
  char* data = scratch + shift + lead;
  char* pristine = data + half;
  if (span != 0) {
    if (tvmfast_is_compact(&t->dl)) {
      std::memcpy(data, source, span);
      std::memcpy(pristine, source, span);
    } else {
      size_t elem = tvmfast_elem_bytes(&t->dl);
      tvmfast_for_each_element(&t->dl, [&](int64_t off) {
        std::memcpy(data + off, source + off, elem);
        std::memcpy(pristine + off, source + off, elem);
      });
    }
  }
  t->scratch = scratch;
  t->pristine = pristine;
  t->source = source;
  t->scratch_bytes = span;
  t->dl.data = data;
  t->dl.byte_offset = 0;
  return 0;
}

/* Write back the elements the callee changed (copy differs from the snapshot). */
static inline void tvmfast_tensor_write_back(TvmfastTensor* t) noexcept {
  if (t->source == NULL || t->scratch_bytes == 0) return;
  const char* copy = static_cast<const char*>(t->dl.data);
  const char* pristine = static_cast<const char*>(t->pristine);
  char* source = static_cast<char*>(t->source);
  size_t elem = tvmfast_elem_bytes(&t->dl);
  if (!tvmfast_is_compact(&t->dl)) {
    tvmfast_for_each_element(&t->dl, [&](int64_t off) {
      if (std::memcmp(copy + off, pristine + off, elem) != 0) std::memcpy(source + off, copy + off, elem);
    });
    return;
  }
  size_t bytes = t->scratch_bytes;
  if (std::memcmp(copy, pristine, bytes) == 0) return;  /* read only: the common case */
  for (size_t i = 0; i + elem <= bytes; i += elem) {
    if (std::memcmp(copy + i, pristine + i, elem) != 0) std::memcpy(source + i, copy + i, elem);
  }
  for (size_t i = bytes - bytes % elem; i < bytes; ++i) {  /* a packed sub-byte tail */
    if (copy[i] != pristine[i]) source[i] = copy[i];
  }
}

/* How many references to t others hold (the callee kept it, returned it or made a view
 * of it): all of them but ours (one, plus one per extra argument slot passing t). */
static inline uint64_t tvmfast_tensor_foreign_refs(const TvmfastTensor* t) noexcept {
  return __atomic_load_n(&t->header.combined_ref_count, __ATOMIC_ACQUIRE) -
         (tvmfast_refcount_both_one + t->shared_slots);
}

/* The callee returned the copy itself and holds nothing else of it: make the result
 * describe the caller's memory again (as rt_mod's result would), once written back. */
static inline void tvmfast_tensor_point_back(TvmfastTensor* t) noexcept {
  t->dl.data = t->source;
  t->dl.byte_offset = 0;
  t->source = NULL;
}

/* Whether two tensors describe exactly the same elements (start, shape, strides, dtype). */
static inline bool tvmfast_same_elements(const DLTensor* x, const DLTensor* y) noexcept {
  if (static_cast<char*>(x->data) + x->byte_offset != static_cast<char*>(y->data) + y->byte_offset ||
      x->ndim != y->ndim || x->dtype.code != y->dtype.code || x->dtype.bits != y->dtype.bits ||
      x->dtype.lanes != y->dtype.lanes || x->device.device_type != y->device.device_type) {
    return false;
  }
  int64_t x_expected = 1, y_expected = 1;
  for (int32_t i = x->ndim - 1; i >= 0; --i) {
    if (x->shape[i] != y->shape[i]) return false;
    int64_t xs = x->strides != NULL ? x->strides[i] : x_expected;
    int64_t ys = y->strides != NULL ? y->strides[i] : y_expected;
    if (x->shape[i] > 1 && xs != ys) return false;  /* same start, other elements */
    x_expected *= x->shape[i];
    y_expected *= y->shape[i];
  }
  return true;
}


#endif  // TVMFAST_MEMORY_ALIGNED_COPY_H_
