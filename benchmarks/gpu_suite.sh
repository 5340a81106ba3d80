#!/usr/bin/env bash
# The GPU measurements, in one short run on a lent CUDA machine (no pip there: run from the repo
# root of a checkout, with the machine's torch/torchvision):
#
#   OUT=/some/dir bash benchmarks/gpu_suite.sh            # results in $OUT, about 5 minutes
#   OUT=/tmp/x DRY_RUN=1 bash benchmarks/gpu_suite.sh     # print the commands only (works anywhere)
#
# Each step writes its JSON into $OUT and its output into $OUT/logs/<step>.{stdout,stderr}.
# A failing or timed-out step is logged and the suite goes on, so one failure loses nothing else.
# Every step has its own time cap, and the whole suite stops starting steps once SUITE_BUDGET_S
# (default 420 s) is spent, so it finishes in well under 8 minutes.
# Order: cheap and most wanted first; torch.compile (slowest, least predictable) last.

set -u

OUT="${OUT:?set OUT to the output folder}"
DRY_RUN="${DRY_RUN:-0}"
BUDGET="${SUITE_BUDGET_S:-420}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

mkdir -p "$OUT/logs" || exit 1
OUT="$(cd "$OUT" && pwd)"  # absolute: the steps run from the repo root
cd "$(dirname "$0")/.." || exit 1
SUMMARY="$OUT/suite_summary.txt"
: > "$SUMMARY"
START=$(date +%s)
FAILED=0

log() { echo "[gpu_suite $(date +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }

# step NAME CAP_SECONDS COMMAND... : run with a time cap (never past the suite budget), log rc and time.
step() {
    local name=$1 cap=$2; shift 2
    local left=$(( BUDGET - ($(date +%s) - START) ))
    local limit=$(( cap < left ? cap : left ))
    if [ "$DRY_RUN" = "1" ]; then
        echo "[dry run] ($name, cap ${cap}s) $*"
        return 0
    fi
    if [ "$limit" -lt 20 ]; then
        log "SKIP $name: only ${left}s of the ${BUDGET}s suite budget left"
        FAILED=$((FAILED + 1))
        return 0
    fi
    log "START $name (limit ${limit}s): $*"
    local t0=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$OUT/logs/$name.stdout" 2> "$OUT/logs/$name.stderr"
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    if [ "$rc" -eq 0 ]; then
        log "OK   $name in ${dt}s"
    else
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && log "TIMEOUT $name after ${dt}s" || log "FAIL $name rc=$rc after ${dt}s"
        tail -n 5 "$OUT/logs/$name.stderr" | sed 's/^/    /' | tee -a "$SUMMARY"
        FAILED=$((FAILED + 1))
    fi
    return 0
}

step env 20 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
    '$PYTHON' -c 'import sys, torch, torchvision; print(sys.version); print(torch.__version__, torchvision.__version__, torch.version.cuda, torch.cuda.get_device_name())'"

# resnet101 vs resnet152 at the GPU defaults (batch 64, 224x224, fp32): JSON on stdout and in compare-cuda/.
step compare 90 "$PYTHON" -m resnet_lab compare resnet101 resnet152 --device cuda --json --out "$OUT/compare-cuda"

# Ours vs torchvision, eager: fp32 and bf16 + channels_last, 224x224, batch 128.
step vs_torchvision 150 "$PYTHON" benchmarks/bench_vs_torchvision.py --device cuda --image-size 224 --batch 128 \
    --configs fp32 bf16_cl --warmup 2 --repeats 6 --min-time 0.1 --out "$OUT/vs_torchvision-cuda.json"

step checkpointing 60 "$PYTHON" benchmarks/bench_checkpointing.py --device cuda --batch 128 --models resnet1202 \
    --out "$OUT/checkpointing-cuda.json"

if [ -f benchmarks/bench_monitor_overhead.py ]; then
    step monitor_overhead 60 "$PYTHON" benchmarks/bench_monitor_overhead.py --device cuda \
        --out "$OUT/monitor_overhead-cuda.json"
else
    log "SKIP monitor_overhead: benchmarks/bench_monitor_overhead.py is not in this checkout"
fi

# torch.compile last: compiling takes about a minute per model, so one small model only.
step vs_torchvision_compiled 150 "$PYTHON" benchmarks/bench_vs_torchvision.py --device cuda --image-size 224 \
    --batch 128 --configs compiled_bf16_cl --compile-models resnet18 --warmup 2 --repeats 6 --min-time 0.1 \
    --out "$OUT/vs_torchvision-cuda-compiled.json"

if [ "$DRY_RUN" != "1" ]; then
    log "done in $(( $(date +%s) - START ))s, $FAILED step(s) failed or skipped; results:"
    ls -la "$OUT" | tee -a "$SUMMARY"
    for f in vs_torchvision vs_torchvision_compiled checkpointing; do
        [ -s "$OUT/logs/$f.stdout" ] && { echo "--- $f"; tail -n 6 "$OUT/logs/$f.stdout"; }
    done
fi
exit 0
