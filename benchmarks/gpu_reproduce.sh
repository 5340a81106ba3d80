#!/usr/bin/env bash
# Issue #16 on a lent GPU: the sweep concurrency measurement first, then the paper-recipe
# reproductions (Fig. 6 and Table 6, `reproduce all`: one resumable sweep), packed after every call
# so that a later session continues them. Run from the repo root of a checkout; no pip needed.
#
# What it does to the data: full CIFAR-10 travels as .gpudata/p00 and p01 (made as in gpu_suite.sh's
# header: the uncompressed .npz, xz'd, split in two); call 1 copies p00 to $CIFAR_DIR (/tmp/cifar),
# call 2 joins it with p01, checks the sha256 and trains only if it matches. Nothing of the data is
# packed or returned.
#
# Schedule (one session = about 15 minutes of device time, each call at most CALL_S = 540 s):
#   first session:
#     OUT=$OUT CALL=1 bash benchmarks/gpu_reproduce.sh     # carry .gpudata/p00: places it (seconds)
#     OUT=$OUT CALL=2 bash benchmarks/gpu_reproduce.sh     # carry .gpudata/p01: data, benchmark, training, pack
#   after each session, its last pack is committed as benchmarks/reproduce-state/state.tgz (part 1: state1.tgz):
#   a new session's checkout holds only what was committed (the 2026-11-29 session's pack, kept in the
#   git-ignored .gpudata/, was lost with its checkout, and its 4 runs with it). A later session continues:
#     mkdir -p .gpudata && mv benchmarks/reproduce-state/state*.tgz .gpudata/  # out of the tree: a tracked file
#                                                     # travels with every call, and the data parts need the room
#     OUT=$OUT CALL=state bash benchmarks/gpu_reproduce.sh # carry .gpudata/state.tgz: unpacks into $WORK (seconds)
#     OUT=$OUT CALL=1 ...; OUT=$OUT CALL=2 ...             # as above; call 2 skips the benchmark once one gave a best count
#   and, while device time is left in a session, more training with nothing carried:
#     OUT=$OUT CALL=more CALL_S=300 bash benchmarks/gpu_reproduce.sh
#   or the survey's claims on CIFAR-10 at a real budget (issue #16 item 4; resumable the same way):
#     OUT=$OUT CALL=survey CALL_S=300 bash benchmarks/gpu_reproduce.sh  # SURVEY_STEPS (600), SURVEY_JOBS (8)
# The calls must follow one another within about 30 s: an idle machine is given back and its
# files (data, $WORK) are lost; then start again from CALL=state with the last archive.
#
# Call 2 (and CALL=more):
#   1. in call 2 until a benchmark has given a best count (none did on 2026-11-29), bench_sweep_concurrency.py
#      (cap 340 s, --budget-s 300): images/s of 1, 2, 4, 8 ResNet-20 runs at
#      batch 128 on the GPU, the best count again with CUDA-graph steps (--compare-graph), and --jobs auto's
#      pick; the best count goes to $WORK/jobs.txt (JOBS= overrides), and --cuda-graph to $WORK/graph.txt
#      when the graph was >= 10% faster and no graph.txt exists yet (the reproduction then runs with it, in
#      every later call too: started runs keep their settings);
#   2. `resnet-lab reproduce all` (64k iterations, fp32, batch 128) on full CIFAR-10: Fig. 6's plain and
#      ResNet nets at depths 20 32 44 56 and Table 6's ResNets, seeds 0 1, one sweep (16 runs: the ResNets
#      serve both), --jobs from jobs.txt, under `timeout -s TERM`: the sweep checkpoints every run and exits
#      143; the same command continues it next call; once every run is done it writes $WORK/paper/fig6/
#      and $WORK/paper/table6/ (results.json, tables, figures, report.html);
#   3. pack_run_state.py: results, logs and the sweeps' small files (a finished run's records hold its
#      results), and the unfinished runs' last.pt while the archive stays under PACK_LIMIT_MIB (56), into
#      $OUT/reproduce-call<CALL>.tgz (the only file left in $OUT). At --jobs 8 the unfinished runs' last.pt
#      can exceed that (ResNet-20 2.2 MB, ResNet-56 7.0 MB): then the printed line says there are 2 parts
#      and the last call of a session is followed by CALL=pack PART=1 (seconds), returning
#      reproduce-callpack-part1.tgz. The next session carries the parts back as .gpudata/state.tgz and
#      state1.tgz, one per CALL=state call.
# DRY_RUN=1 prints the training commands instead of running them (the data and pack steps still run;
# CIFAR_DIR and CIFAR_SHA let the tests run them on a small stand-in).

set -u
OUT="${OUT:?set OUT to the output folder}"
CALL="${CALL:?set CALL=1, 2, state, more, survey or pack}"
PART="${PART:-0}"
DRY_RUN="${DRY_RUN:-0}"
CALL_S="${CALL_S:-540}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
DATA="${CIFAR_DIR:-/tmp/cifar}"
WORK="${WORK:-/tmp/reproduce}"  # the sweeps: kept on the machine between calls, packed after each
NPZ="$DATA/cifar10-full.npz"
# sha256 of the uncompressed .npz copy of ../shared/data/cifar10-full.npz (same arrays)
SHA="${CIFAR_SHA:-296b65a512bfbb3e749d9ae279f2c3190609da2ed136e1cb81ba47a246fd773b}"
DEPTHS="${DEPTHS:-20 32 44 56}"
SEEDS="${SEEDS:-0 1}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

cd "$(dirname "$0")/.." || exit 1
mkdir -p "$OUT/results/logs" "$DATA" "$WORK" || exit 1
OUT="$(cd "$OUT" && pwd)"
RES="$OUT/results"
SUMMARY="$RES/reproduce_summary.txt"
START=$(date +%s)
log() { echo "[gpu_reproduce $(date +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }
left() { echo $(( CALL_S - 30 - ($(date +%s) - START) )); }  # 30 s kept for the pack

# step NAME CAP COMMAND...: under `timeout -s TERM` (a sweep checkpoints and exits 143), at most CAP and what
# the call has left; its output in results/logs/NAME.{stdout,stderr}; sets RC.
step() {
    local name=$1 cap=$2; shift 2
    local limit; limit=$(left); [ "$cap" -lt "$limit" ] && limit=$cap
    if [ "$DRY_RUN" = "1" ]; then
        echo "[dry run] ($name, cap ${cap}s) $(printf '%q ' "$@")"; RC=0; return 0
    fi
    if [ "$limit" -lt 30 ]; then log "SKIP $name: ${limit}s left in this call"; RC=124; return 0; fi
    log "START $name (limit ${limit}s): $*"
    local t0; t0=$(date +%s)
    timeout -s TERM -k 90 "$limit" "$@" >> "$RES/logs/$name.stdout" 2>> "$RES/logs/$name.stderr"
    RC=$?
    log "END   $name rc=$RC after $(( $(date +%s) - t0 ))s (0 done, 124/143 stopped and checkpointed: rerun continues)"
    tail -n 3 "$RES/logs/$name.stderr" | sed 's/^/    /' | tee -a "$SUMMARY"
}

# measured FILE: the concurrency benchmark's JSON there has a best job count.
measured() {
    "$PYTHON" -c "import json, sys; sys.exit(0 if (json.load(open(sys.argv[1])).get('best') or {}).get('jobs') else 1)" \
        "$1" 2> /dev/null
}

case "$CALL" in
    state)  # every .gpudata/state*.tgz carried (the parts of the last pack: as many per call as fit)
        for archive in .gpudata/state*.tgz; do
            if tar xzf "$archive" -C "$WORK" --strip-components=1 state; then
                log "unpacked $archive into $WORK: $(find "$WORK" -name last.pt | wc -l) last.pt there now"
            else
                log "no usable $archive: its runs start from scratch"
            fi
        done
        ;;
    pack)  # only a further part of the pack (PART=1, 2, ...): the last.pt that did not fit part 0
        ;;
    1)
        cp .gpudata/p00 "$DATA/" && log "placed p00 in $DATA" || log ".gpudata/p00 missing: call 2 will lack the data"
        ;;
    2|more)
        if [ "$CALL" = 2 ]; then
            if command -v xz > /dev/null; then
                cat "$DATA/p00" .gpudata/p01 | xz -d > "$NPZ"
            else
                cat "$DATA/p00" .gpudata/p01 | "$PYTHON" -c \
                    "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)" > "$NPZ"
            fi
        fi
        if ! echo "$SHA  $NPZ" | sha256sum -c --quiet; then
            log "the joined CIFAR-10 ($NPZ) does not match its sha256: nothing trained"
        else
            [ "$DRY_RUN" = "1" ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RES/gpu.txt" 2>&1
            # Measurement first: in call 2, until a session's benchmark has given a best count.
            if [ "$CALL" = 2 ] && ! measured "$WORK/sweep_concurrency-cuda.json"; then
                step sweep_concurrency 340 "$PYTHON" benchmarks/bench_sweep_concurrency.py --device cuda \
                    --data "npz:$NPZ" --budget-s 300 --compare-graph --out "$RES/sweep_concurrency-cuda.json"
                "$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['best']['jobs'])" \
                    "$RES/sweep_concurrency-cuda.json" > "$WORK/jobs.txt" 2> /dev/null || echo 4 > "$WORK/jobs.txt"
                # CUDA-graph steps for the reproduction only if measured >= 10% faster at that count, and only
                # while no graph.txt exists: the choice is kept for every later call (the sweep's runs keep the
                # settings they started with).
                [ -e "$WORK/graph.txt" ] || "$PYTHON" -c "import json, sys; \
r = json.load(open(sys.argv[1])).get('graphed_at_best') or {}; \
print('--cuda-graph' if r.get('ratio_to_eager', 0) >= 1.1 else '')" "$RES/sweep_concurrency-cuda.json" \
                    > "$WORK/graph.txt" 2> /dev/null || : > "$WORK/graph.txt"
                cp "$RES/sweep_concurrency-cuda.json" "$WORK/" 2> /dev/null
            fi
            N="${JOBS:-$(cat "$WORK/jobs.txt")}"
            GRAPH="$(cat "$WORK/graph.txt" 2> /dev/null)"
            log "training with --jobs $N per GPU${GRAPH:+, $GRAPH}"
            # shellcheck disable=SC2086  # DEPTHS, SEEDS and GRAPH are lists
            step reproduce 9999 "$PYTHON" -m resnet_lab reproduce all --out "$WORK/paper" --depths $DEPTHS \
                --plain-depths $DEPTHS --seeds $SEEDS --data "npz:$NPZ" --jobs "$N" --devices cuda $GRAPH
        fi
        ;;
    survey)  # the data placed by calls 1 and 2 of this session; the cells' results come back in the pack
        if ! echo "$SHA  $NPZ" | sha256sum -c --quiet; then
            log "no checked CIFAR-10 at $NPZ (run calls 1 and 2 first): nothing measured"
        else
            step survey 9999 "$PYTHON" -m resnet_lab survey --data "npz:$NPZ" --depths 8 20 56 \
                --steps "${SURVEY_STEPS:-600}" --seeds 3 --device cuda --jobs "${SURVEY_JOBS:-8}" --quiet \
                --out "$WORK/survey"
        fi
        ;;
    *) echo "gpu_reproduce: CALL must be 1, 2, state, more, survey or pack, got $CALL" >&2; exit 2 ;;
esac

# One archive back: results and logs, the sweeps' small files, and as many last.pt as fit.
log "call $CALL done in $(( $(date +%s) - START ))s; packing part $PART"
NAME="reproduce-call$CALL$([ "$PART" = 0 ] || echo "-part$PART").tgz"
"$PYTHON" benchmarks/pack_run_state.py --state "$WORK" --results "$RES" --limit-mib "${PACK_LIMIT_MIB:-56}" \
    --part "$PART" --out "/tmp/$NAME" && rm -rf "${OUT:?}"/* && mv "/tmp/$NAME" "$OUT/"
ls -la "$OUT"
