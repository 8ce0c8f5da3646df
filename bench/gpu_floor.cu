// The physical floor of an eager launch: a C loop of cuLaunchKernel on the same
// compiled kernel TVM launches (the tiny add's CUDA source, compiled to a fatbin).
//   nvcc -O2 -o gpu_floor bench/gpu_floor.cu -lcuda
//   ./gpu_floor add.fatbin main_kernel GRID BLOCK N
// Prints JSON: host us per launch in bursts of 256 (shorter than the launch queue),
// and synchronized us per launch over 20000 launches.
#include <cuda.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>

#define CHECK(x) do { CUresult r = (x); if (r != CUDA_SUCCESS) { \
  const char* s; cuGetErrorString(r, &s); fprintf(stderr, "%s: %s\n", #x, s); return 1; } } while (0)

int main(int argc, char** argv) {
  if (argc < 6) { fprintf(stderr, "usage: gpu_floor fatbin kernel grid block n\n"); return 2; }
  int grid = atoi(argv[3]), block = atoi(argv[4]); size_t n = atoll(argv[5]);
  CUdevice dev; CUcontext ctx; CUmodule mod; CUfunction fn;
  CHECK(cuInit(0)); CHECK(cuDeviceGet(&dev, 0)); CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
  CHECK(cuCtxSetCurrent(ctx)); CHECK(cuModuleLoad(&mod, argv[1])); CHECK(cuModuleGetFunction(&fn, mod, argv[2]));
  CUdeviceptr a, b, c;
  CHECK(cuMemAlloc(&a, n * 4)); CHECK(cuMemAlloc(&b, n * 4)); CHECK(cuMemAlloc(&c, n * 4));
  void* params[] = {&a, &b, &c};
  CUstream stream; CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  for (int i = 0; i < 1000; ++i) CHECK(cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, stream, params, nullptr));
  CHECK(cuStreamSynchronize(stream));
  using clk = std::chrono::steady_clock;
  std::vector<double> burst;
  for (int r = 0; r < 200; ++r) {
    auto t0 = clk::now();
    for (int i = 0; i < 256; ++i) CHECK(cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, stream, params, nullptr));
    auto t1 = clk::now();
    CHECK(cuStreamSynchronize(stream));
    burst.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / 256);
  }
  std::sort(burst.begin(), burst.end());
  auto t0 = clk::now();
  for (int i = 0; i < 20000; ++i) CHECK(cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, stream, params, nullptr));
  CHECK(cuStreamSynchronize(stream));
  double sync_us = std::chrono::duration<double, std::micro>(clk::now() - t0).count() / 20000;
  printf("{\"host_us_per_launch_burst256_median\": %.4f, \"sync_us_per_launch\": %.4f}\n",
         burst[burst.size() / 2], sync_us);
  return 0;
}
