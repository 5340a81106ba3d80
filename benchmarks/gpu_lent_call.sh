#!/usr/bin/env bash
# One call on a lent GPU machine, where full CIFAR-10 arrives in two parts (see gpu_suite.sh's
# header for how .gpudata/p00 and p01 are made). Run from the repo root, the two calls back to back:
#
#   OUT=$OUT CALL=1 bash benchmarks/gpu_lent_call.sh    # carry .gpudata/p00: phases a and b
#   OUT=$OUT CALL=2 bash benchmarks/gpu_lent_call.sh    # carry .gpudata/p01: the data, then phase c
#   OUT=$OUT CALL=3 bash benchmarks/gpu_lent_call.sh    # nothing carried, right after call 2: phase e
#
# Each call leaves one file, $OUT/call<N>.tgz (such machines return at most 8 files).
# DRY_RUN=1 prints the suite's commands instead of running them (the data steps still run;
# CIFAR_DIR and CIFAR_SHA let the tests run them on a small stand-in).

set -u
OUT="${OUT:?set OUT to the output folder}"
CALL="${CALL:?set CALL=1, 2 or 3}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
DATA="${CIFAR_DIR:-/tmp/cifar}"
# sha256 of the uncompressed .npz copy of ../shared/data/cifar10-full.npz (same arrays)
SHA="${CIFAR_SHA:-296b65a512bfbb3e749d9ae279f2c3190609da2ed136e1cb81ba47a246fd773b}"
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$OUT" "$DATA" || exit 1

case "$CALL" in
    1)
        cp .gpudata/p00 "$DATA/" || echo "gpu_lent_call: .gpudata/p00 missing: call 2 will lack the data" >&2
        PHASE=ab SUITE_BUDGET_S="${SUITE_BUDGET_S:-330}" OUT="$OUT" bash benchmarks/gpu_suite.sh
        ;;
    2)
        # xz if the machine has it, else Python's lzma (the delta filter is recorded in the stream)
        if command -v xz > /dev/null; then
            cat "$DATA/p00" .gpudata/p01 | xz -d > "$DATA/cifar10-full.npz"
        else
            cat "$DATA/p00" .gpudata/p01 | "$PYTHON" -c \
                "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)" \
                > "$DATA/cifar10-full.npz"
        fi
        if echo "$SHA  $DATA/cifar10-full.npz" | sha256sum -c --quiet; then
            CIFAR10_NPZ="$DATA/cifar10-full.npz" PHASE=c SUITE_BUDGET_S="${SUITE_BUDGET_S:-480}" OUT="$OUT" \
                bash benchmarks/gpu_suite.sh
        else
            echo "gpu_lent_call: the joined CIFAR-10 does not match its sha256; phase c not run" | tee "$OUT/data_error.txt"
        fi
        ;;
    3)  # the data call 2 placed, while the machine keeps its files
        if echo "$SHA  $DATA/cifar10-full.npz" | sha256sum -c --quiet; then
            CIFAR10_NPZ="$DATA/cifar10-full.npz" PHASE=e SUITE_BUDGET_S="${SUITE_BUDGET_S:-540}" OUT="$OUT" \
                bash benchmarks/gpu_suite.sh
        else
            echo "gpu_lent_call: no checked CIFAR-10 in $DATA (run call 2 first); phase e not run" | tee "$OUT/data_error.txt"
        fi
        ;;
    *) echo "gpu_lent_call: CALL must be 1, 2 or 3, got $CALL" >&2; exit 2 ;;
esac

# One archive back instead of many files.
tar czf "/tmp/call$CALL.tgz" -C "$OUT" . && rm -rf "${OUT:?}"/* && mv "/tmp/call$CALL.tgz" "$OUT/"
ls -la "$OUT"
