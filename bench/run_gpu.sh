#!/usr/bin/env bash
# The whole GPU suite and benchmark in one go, on the device machine (see README,
# "GPU"). Needs .device/ from shared/device/prepare.sh and bench/gpu_prepare.py.
set -uo pipefail
OUT=${OUT:-/tmp/tvmfast_gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/whl/*.whl && cp -r .device/tvm /tmp/site/
export PYTHONPATH=/tmp/site:$PWD:$PWD/.device PYTHONUNBUFFERED=1 TVM_USE_RUNTIME_LIB=1
export TVMFAST_CUDA_KERNELS=$PWD/.device/kernels TVMFAST_PRELOAD=on_device
python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'exchange capsule:', hasattr(torch.Tensor, '__dlpack_c_exchange_api__'))" | tee "$OUT/torch.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs 2>&1 | tee "$OUT/gpu_tests.log"
(cd .device/kernels && nvcc -fatbin -O3 -arch=sm_90 -o add.fatbin add_f32_1024.cu) && \
  nvcc -O2 -o /tmp/gpu_floor bench/gpu_floor.cu -lcuda && \
  /tmp/gpu_floor .device/kernels/add.fatbin main_kernel 4 256 1024 | tee "$OUT/culaunch_floor.json"
python3 bench/gpu_bench.py .device/kernels "$OUT" "$OUT/culaunch_floor.json" 2>&1 | tee "$OUT/gpu_bench.log"
