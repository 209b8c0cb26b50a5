#!/usr/bin/env bash
# Train the detector and the segmenter side by side on one lent GPU, then the classifier (half the
# budget), each from the ImageNet EfficientNet-Lite checkpoint, from the packed frames in .gpudata
# (python -m training.pack --size 256 --out .gpudata), checkpoints only; export, evaluation and
# manifests then run on the CPU with `python -m training.<task> --weights runs/<task>/ckpt.pt
# --epochs 0`. Usage, from the repository root: bash training/gpu_train.sh [budget_s] [log_dir]
set -u
budget=${1:-360}
logs=${2:-runs/gpu}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 OMP_NUM_THREADS=4
if [ -d .whl ] && ! python3 -c "import pydantic" 2>/dev/null; then  # the GPU image lacks pydantic
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
# preflight: a few steps of each on this device, so a broken run fails in seconds, not minutes
for task in detection segmentation classification; do
    python3 -m "training.$task" --data-root .gpudata --dry-run --no-export \
        --work-dir "/tmp/preflight/$task" >"$logs/$task.preflight.log" 2>&1 || {
        tail -n 30 "$logs/$task.preflight.log"
        exit 1
    }
done
for task in detection segmentation; do
    python3 -m "training.$task" --data-root .gpudata --time-budget-s "$budget" \
        --no-export --work-dir "runs/$task" >"$logs/$task.log" 2>&1 &
done
wait
python3 -m training.classification --data-root .gpudata --time-budget-s $((budget / 2)) \
    --no-export --work-dir runs/classification >"$logs/classification.log" 2>&1
tail -n 3 "$logs"/*.log
