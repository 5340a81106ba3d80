"""Time to paper accuracy: `resnet-lab train --recipe fast` on CIFAR-10, wall clock, several seeds.

Each run is the user's command in a fresh process, timed from launch to exit, so Python start-up,
loading and uploading the data, cuDNN autotuning and the graph capture all count (the report,
which the recipe draws in a detached process after the exit, does not; the next run waits for it):

    resnet-lab train --recipe fast --model M --data D --seed S --quiet --out <tmp>

The accuracy is the final one on the full test split, single view (no test-time augmentation).
With ``--extra --ema DECAY`` the run's weight average, with ``--extra --tta`` flip test-time
augmentation, are evaluated too and reported beside it, never instead.
``--variants`` compares sets of flags on the same seeds (each seed runs every variant in turn)
and reports each variant's accuracy change over the first one, seed by seed.
Every run records the sha256 of its ``metrics.jsonl`` (``metrics_sha256``) and of the same lines
without their timing fields (``metrics_values_sha256``: equal for two runs that computed the same
steps). Per model: every run, and the medians over seeds against the paper's Table 6 accuracy and the
time target. ``--budget-s`` stops starting runs once spent, so a lent GPU's time is respected.

    python benchmarks/bench_fast_cifar.py --data cifar10 --device cuda --runs resnet20:3 resnet56:3 resnet110:1
    python benchmarks/bench_fast_cifar.py --device cuda --runs resnet20:3 --variants "" "--flip alternate"
    python benchmarks/bench_fast_cifar.py --smoke --out /tmp/x.json     # digits, 1 epoch
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

# Accuracies some flags add to a run, reported beside the target's single-view one.
BESIDE = {"ema_test_acc": "weight average", "tta_test_acc": "flip-TTA"}
# He et al. 2015, Table 6 (CIFAR-10 test accuracy), and the time targets of the fast path.
TARGETS = {"resnet20": {"acc": 0.9125, "seconds": 15}, "resnet56": {"acc": 0.9303, "seconds": 60},
           "resnet110": {"acc": 0.9357, "seconds": 180}}


# Fields of a metrics.jsonl line that measure time, not training: they differ between two runs
# that computed bit-identical steps.
TIMING_FIELDS = ("time_s", "elapsed_s", "run_time_s", "images_per_s")


def metrics_digest(path: Path) -> dict:
    """sha256 of a run's metrics.jsonl, byte for byte (``metrics_sha256``), and of its lines
    without the timing fields (``metrics_values_sha256``): two runs that computed the same
    steps share the second, whatever their speed; two runs that did not, share neither."""
    raw = Path(path).read_bytes()
    values = [json.dumps({k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS}, sort_keys=True)
              for line in raw.decode().splitlines() if line.strip()]
    return {"metrics_sha256": hashlib.sha256(raw).hexdigest(),
            "metrics_values_sha256": hashlib.sha256("\n".join(values).encode()).hexdigest()}


def run_once(model: str, seed: int, variant: str, args, workdir: Path) -> dict:
    from resnet_lab.report.background import wait_for_report

    out = workdir / f"{model}-seed{seed}-variant{args.variants.index(variant)}"
    cmd = [sys.executable, "-m", "resnet_lab", "train", "--recipe", "fast", "--model", model, "--data", args.data,
           "--seed", str(seed), "--device", args.device, "--quiet", "--out", str(out),
           *(["--epochs", str(args.epochs)] if args.epochs else []), *shlex.split(variant), *args.extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    exited = time.time()
    if proc.returncode != 0:
        return {"model": model, "seed": seed, "variant": variant, "error": proc.stderr.strip().splitlines()[-1:],
                "wall_s": wall}
    # Untimed: the recipe draws its report in a detached process after the exit; it must not overlap the next run.
    report_after_exit_s = max(0.0, wait_for_report(out).stat().st_mtime - exited)
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    timings = json.loads((out / "timings.json").read_text())  # where the process's time went
    notes = [line for line in proc.stdout.splitlines() if line.startswith(("note:", "warning:"))]
    row = {"model": model, "seed": seed, "variant": variant, "wall_s": wall, "train_s": history[-1]["elapsed_s"],
           "epochs": len(history), "test_acc": history[-1]["test_acc"],
           **{key: history[-1].get(key) for key in BESIDE},  # with --extra --ema DECAY / --tta
           "epoch_s_median": statistics.median(h["time_s"] for h in history),
           "first_epoch_s": history[0]["time_s"],  # minus the median: one-off work (cuDNN autotuning, graph capture)
           "images_per_s_median": statistics.median(h["images_per_s"] for h in history), "notes": notes,
           "test_curve": [(h["epoch"], h["test_acc"]) for h in history if h["test_acc"] is not None],
           # the run's record, hashed: ties these figures to one metrics.jsonl, and tells a re-run of
           # the same steps (same values hash) from a different trajectory
           **metrics_digest(out / "metrics.jsonl"),
           # the rest of the wall time: process launch before the clock starts, and exit
           "timings": {**timings, "exit_s": wall - sum(v for v in timings.values() if v is not None)},
           "report_after_exit_s": report_after_exit_s}  # drawn after the exit (the recipe's default)
    extra = "".join(f" ({name} {row[key]:.2%})" for key, name in BESIDE.items() if row[key] is not None)
    print(f"{model}{_label(variant, args.variants)} seed {seed}: {row['test_acc']:.2%}{extra} "
          f"in {wall:.1f} s wall ({row['epochs']} epochs; "
          f"{', '.join(f'{k[:-2]} {v:.1f}' for k, v in row['timings'].items() if v is not None)})"
          f"{' ' + '; '.join(notes) if notes else ''}", flush=True)
    return row


def _label(variant: str, variants: list[str]) -> str:
    return f" [{variant or 'recipe as is'}]" if len(variants) > 1 else ""


def summarise(rows: list[dict]) -> list[dict]:
    summary = []
    for model, variant in dict.fromkeys((r["model"], r["variant"]) for r in rows):
        ok = [r for r in rows if (r["model"], r["variant"]) == (model, variant) and "error" not in r]
        if not ok:
            continue
        # Paired with the first variant on the same seeds (same initial weights, image order and crops).
        first = next(r["variant"] for r in rows if r["model"] == model)
        base = {r["seed"]: r["test_acc"] for r in rows
                if (r["model"], r["variant"]) == (model, first) and "error" not in r}
        deltas = [r["test_acc"] - base[r["seed"]] for r in ok if r["seed"] in base] if variant != first else []
        acc, wall = statistics.median(r["test_acc"] for r in ok), statistics.median(r["wall_s"] for r in ok)
        target = TARGETS.get(model)
        beside = {key: [r[key] for r in ok if r.get(key) is not None] for key in BESIDE}
        summary.append({"model": model, "variant": variant, "seeds": len(ok), "median_test_acc": acc,
                        "median_wall_s": wall,
                        "vs_first_variant": {"variant": first, "test_acc_deltas": deltas,
                                             "mean_delta": statistics.mean(deltas)} if deltas else None,
                        # reported beside, never instead: the target is judged on the single-view accuracy
                        # of the trained weights
                        **{f"median_{key}": statistics.median(v) if v else None for key, v in beside.items()},
                        "target": target,
                        "meets_accuracy": None if target is None else acc >= target["acc"],
                        "meets_time": None if target is None else wall <= target["seconds"]})
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="cifar10")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", nargs="+", default=["resnet20:3", "resnet56:3", "resnet110:3"],
                   help="MODEL:SEEDS, run in this order")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (default: the recipe's, by depth)")
    p.add_argument("--variants", nargs="+", default=[""], metavar="FLAGS",
                   help='flag sets compared on the same seeds, e.g. "" "--flip alternate" ("": the recipe as is)')
    p.add_argument("--budget-s", type=float, default=float("inf"), help="start no run after this many seconds")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `resnet-lab train` flags")
    p.add_argument("--smoke", action="store_true", help="digits, resnet8, 1 epoch, 1 seed: for the test suite")
    p.add_argument("--out", help="JSON output (default: benchmarks/results/fast_cifar-<device>.json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.data, args.runs, args.epochs, args.extra = "digits", ["resnet8:1"], 1, ["--batch-size", "64"]
    return args


def main(argv=None) -> dict:
    from resnet_lab.runtime import hardware_info, pick_device
    from resnet_lab.files import write_json

    args = parse_args(argv)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"fast_cifar-{pick_device(args.device).type}.json")
    result = {"benchmark": "fast_cifar", "hardware": hardware_info(pick_device(args.device)), "data": args.data,
              "command": " ".join(["resnet-lab train --recipe fast --model M --data D --seed S --quiet", *args.extra]),
              "variants": args.variants,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": [], "summary": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.runs:
            model, _, seeds = spec.partition(":")
            for seed, variant in ((s, v) for s in range(int(seeds or 1)) for v in args.variants):
                if time.perf_counter() - start > args.budget_s:
                    print(f"budget of {args.budget_s:.0f} s spent: not starting {model} seed {seed}", flush=True)
                    continue
                result["runs"].append(run_once(model, seed, variant, args, Path(tmp)))
                result["summary"] = summarise(result["runs"])
                write_json(out, result)  # after each run: a cut-off keeps the rest
    for s in result["summary"]:
        target = s["target"] or {}
        paired = s["vs_first_variant"]
        print(f"{s['model']}{_label(s['variant'], args.variants)}: median {s['median_test_acc']:.2%} "
              f"in {s['median_wall_s']:.1f} s over {s['seeds']} seed(s)"
              + (f" (target {target['acc']:.2%} in {target['seconds']} s: accuracy "
                 f"{'met' if s['meets_accuracy'] else 'NOT met'}, time {'met' if s['meets_time'] else 'NOT met'})"
                 if target else "")
              + "".join(f"; {name} median {s[f'median_{key}']:.2%}" for key, name in BESIDE.items()
                        if s[f"median_{key}"] is not None)
              + (f"; vs [{paired['variant'] or 'recipe as is'}] on the same seeds: "
                 f"{', '.join(f'{d * 100:+.2f}' for d in paired['test_acc_deltas'])} points "
                 f"(mean {paired['mean_delta'] * 100:+.2f})" if paired else ""))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
