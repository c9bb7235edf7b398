#!/usr/bin/env bash
# The one prepared GPU check (issue 15), for a session that is lent a CUDA machine. It runs, in
# about 5 minutes on one modern GPU:
#   1. the cuda-marked tests (trainers, losses and stacked sweeps on the GPU; the recipe's
#      autocast + channels_last and on-device augmentation);
#   2. a short CIFAR-100 run of the cifar100-kd recipe (2 epochs, teacher and a KD student),
#      which prints images/s and test accuracy (CIFAR-100 must be downloadable, or already in
#      $SKDTUTOR_DATA);
#   3. stacked sweeps on the GPU: students per second for 15 and 135 default mnist1d students.
# Usage: bash benchmarks/gpu_check.sh [output folder]   (the log is written there too)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
export SKDTUTOR_CACHE="$out/cache"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  echo "== 1. cuda-marked tests"
  python -m pytest -q -m cuda tests/test_train.py tests/test_recipe.py -p no:cacheprovider
  echo "== 2. cifar100-kd, 2 epochs"
  timeout 240 python -m skdtutor recipe cifar100-kd --epochs 2 --methods kd --device cuda \
      --root "${SKDTUTOR_DATA:-$out/data}" --csv "$out/recipe.csv"
  echo "== 3. stacked sweeps on the GPU"
  python - <<'EOF'
import time

import torch

from skdtutor import config, data, sweep, teachers
from skdtutor.losses import KD
from skdtutor.sweep import SweepMember

bundle = data.load("mnist1d")
setting = config.setting_for("mnist1d")
_, logits, _ = teachers.default_teacher(bundle, device="cuda")
cfg = setting.student_train.replace(device="cuda", epochs=5)
for n in (15, 135):
    members = [SweepMember(KD(T=float(2 ** (i % 5))), i) for i in range(n)]
    sweep.distill_sweep(lambda: setting.student.build(bundle), logits, bundle, members[:2],
                        config=cfg.replace(epochs=1), progress=False)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    sweep.distill_sweep(lambda: setting.student.build(bundle), logits, bundle, members,
                        config=cfg, progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"stacked sweep on {torch.cuda.get_device_name(0)}: {n} students x {cfg.epochs} epochs "
          f"in {seconds:.2f} s = {n * cfg.epochs / seconds:.1f} student-epochs/s")
EOF
} 2>&1 | tee "$out/gpu-check.log"
