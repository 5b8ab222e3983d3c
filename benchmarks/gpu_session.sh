#!/usr/bin/env bash
# One GPU session of issues 13 and 14, in one command: the CUDA half of the test suite, the audit
# and SP-G on the GPU (benchmarks/audit_gpu.py), and the trainers' throughput at 128 px
# (benchmarks/train_throughput.py), with and without bf16 autocast and with the set streamed from
# the host. At most 9.5 minutes on one H200 (the sum of the steps' timeouts);
# every step has its own timeout, so one that hangs does not eat the others' time.
#
# The GPU machine has torch/torchvision with CUDA but not captum, lpips, quantus (and its
# cachetools). Once, on the development machine, in the repository root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       captum==0.9.0 lpips==0.1.4 quantus==0.6.0 cachetools
#
# then run `bash benchmarks/gpu_session.sh` there with `.whl` carried; it writes 7 files
# to $OUT (a plain run writes to /tmp/gpu-session). Copy the numbers into benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
LOG="$OUT/session.log"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "wheel install failed" | tee "$LOG"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
step() { echo "== $(date -u +%T) $*" | tee -a "$LOG"; }

step versions
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, captum, captum_cf; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '-',
'captum', captum.__version__)"; } 2>&1 | tee -a "$LOG"

step "CUDA tests: every test that takes the device fixture, its cuda parameter"
# pytest-xdist and pytest-timeout are in the GPU machine's image: 8 workers share the one GPU,
# and a test that hangs fails alone after 120 s
par=""
python3 -c "import xdist, pytest_timeout" 2>/dev/null && par="-n 8 --timeout 120"
timeout 170 python3 -m pytest -p no:cacheprovider -o addopts="" -q -rfE -k cuda $par \
    --ignore=tests/captum_suite --ignore=tests/test_tutorials.py \
    --junitxml="$OUT/cuda_tests.xml" tests 2>&1 | tail -40 | tee -a "$LOG"

step "audit (resnet50, 224 px, default grid) and SP-G vs SP on the GPU"
timeout 170 python3 benchmarks/audit_gpu.py --device cuda --n 16 --skip spg \
    --json "$OUT/audit_gpu.json" 2>&1 | tail -20 | tee -a "$LOG"
timeout 60 python3 benchmarks/audit_gpu.py --device cuda --skip audit \
    --json "$OUT/spg_gpu.json" 2>&1 | tail -20 | tee -a "$LOG"

step "trainers at 128 px on the GPU, float32 then bf16 autocast"
timeout 70 python3 benchmarks/train_throughput.py --device cuda --steps 20 --batch-size 32 \
    --out "$OUT/train_cuda.json" 2>&1 | tail -12 | tee -a "$LOG"
timeout 70 python3 benchmarks/train_throughput.py --device cuda --steps 20 --batch-size 32 \
    --amp bf16 --out "$OUT/train_cuda_bf16.json" 2>&1 | tail -12 | tee -a "$LOG"
step "classifier and GANMEX at 128 px on the GPU, the set streamed from the host per step"
timeout 50 python3 benchmarks/train_throughput.py --device cuda --steps 20 --batch-size 32 \
    --stream --trainers classifier ganmex --out "$OUT/train_cuda_stream.json" 2>&1 \
    | tail -12 | tee -a "$LOG"
step done
