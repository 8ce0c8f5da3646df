"""Build the CUDA kernels for the GPU tests and benchmark, here (no GPU needed).

    python bench/gpu_prepare.py .device/kernels

Writes add_f32_1024.so (tiny add), add_f32_65536.so, gemv_int4.so (the seed's
1x1024 fp16 x 1024x1024 int4 kernel) and the CUDA source of the tiny add, for the raw
cuLaunchKernel floor (bench/gpu_floor.cu).
"""
import json
import os
import sys

from tvmfast import kernels


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    built = {
        "add_f32_1024": kernels.build_add_cuda(1024),
        "add_f32_65536": kernels.build_add_cuda(65536),
        "gemv_int4": kernels.build_int4_gemv_cuda(1024, 1024),
    }
    for name, mod in built.items():
        mod.export_library(os.path.join(out_dir, name + ".so"))
    src = built["add_f32_1024"].imports[0].inspect_source()
    with open(os.path.join(out_dir, "add_f32_1024.cu"), "w") as fh:
        fh.write(src)
    # launch configuration of the tiny add, for the C floor
    with open(os.path.join(out_dir, "add_f32_1024.json"), "w") as fh:
        json.dump({"kernel": "main_kernel", "grid": 4, "block": 256, "n": 1024}, fh)
    print("built", sorted(os.listdir(out_dir)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".device/kernels")
