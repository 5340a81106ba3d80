"""How much do the Lightning and Hugging Face gradient-monitor callbacks add to a training step?

For each adapter, the same training run (ResNet-20 from the zoo, CIFAR-shaped random data,
batch 128, SGD with momentum, CPU) is run ``--rounds`` times with the callback and as often
without it, alternating (the order flips every round, so that drift in clock speed or load
hits both alike). Each run is a fresh ``trainer.fit`` / ``trainer.train`` of ``--steps``
optimizer steps; a timing callback (present in both variants) measures from the start of the
first step to the end of the last, so trainer start-up is not counted. The callback records
once per run (``every=--steps``): with the default ``--steps 50`` that is Lightning's default
logging interval; fewer steps record more often, so their overhead is an upper bound. The
end-of-run report (plots) is timed apart: it is paid once per run, not per step.

The result is the median over rounds of ``with / without - 1`` (paired within a round), its
spread (min, max) and the median step times. Where the CPU is shared that difference is noisy,
so the time spent inside the callback's per-step hooks (monitor, policy, logging) is measured too
and given as a share of the step without the callback: a low-noise measure of the same cost.
Writes JSON (``--out``, default ``benchmarks/results/integrations_overhead-cpu.json``) with the
hardware, the date and the load average before and after.

    python benchmarks/bench_integrations_overhead.py                 # ResNet-20, batch 128, 50 steps
    python benchmarks/bench_integrations_overhead.py --steps 10 --rounds 3
    python benchmarks/bench_integrations_overhead.py --smoke --out /tmp/x.json   # seconds, for tests
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from resnet_lab.files import write_json  # noqa: E402
from resnet_lab.models import create_model  # noqa: E402
from resnet_lab.runtime import hardware_info  # noqa: E402

TARGET = 0.03  # CPU
ADAPTERS = ("lightning", "huggingface")


class Images(torch.utils.data.Dataset):
    """CIFAR-shaped random images, as dicts (the Hugging Face Trainer's batch format)."""

    def __init__(self, n: int, size: int):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class Classifier(nn.Module):
    """A zoo model that returns its loss, as Hugging Face models do."""

    def __init__(self, name: str):
        super().__init__()
        self.net = create_model(name, num_classes=10)

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def lightning_run(args, data, with_callback: bool, out: Path) -> dict:
    import lightning.pytorch as pl

    from resnet_lab.integrations.lightning import GradientMonitorCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = Classifier(args.model)

        def training_step(self, batch, batch_idx):
            return self.model(**batch)["loss"]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.start = getattr(self, "start", None) or time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.end = time.perf_counter()

    timer = Timer()
    monitor_callback = timed(GradientMonitorCallback, HOOKS["lightning"])
    callbacks = [timer] + ([monitor_callback(out, every=args.steps)] if with_callback else [])
    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", logger=pl.loggers.CSVLogger(out),
                         callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=args.steps, default_root_dir=out)
    torch.manual_seed(0)
    start = time.perf_counter()
    trainer.fit(Module(), torch.utils.data.DataLoader(data, batch_size=args.batch))
    total = time.perf_counter() - start
    return {"step_s": (timer.end - timer.start) / args.steps, "report_s": total - (timer.end - start)}


def huggingface_run(args, data, with_callback: bool, out: Path) -> dict:
    import transformers

    from resnet_lab.integrations.huggingface import GradientMonitorCallback

    class Timer(transformers.TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = getattr(self, "start", None) or time.perf_counter()

        def on_step_end(self, *a, **k):
            self.end = time.perf_counter()

    torch.manual_seed(0)
    targs = transformers.TrainingArguments(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=0.05,
        optim="sgd", logging_steps=args.steps, report_to=[], use_cpu=True, save_strategy="no",
        disable_tqdm=True, max_grad_norm=0.0, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=Classifier(args.model), args=targs, train_dataset=data)
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # no log lines on stdout
    timer = Timer()
    trainer.add_callback(timer)
    if with_callback:
        timed(GradientMonitorCallback, HOOKS["huggingface"]).attach(trainer, every=args.steps)
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    return {"step_s": (timer.end - timer.start) / args.steps, "report_s": total - (timer.end - start)}


RUNS = {"lightning": lightning_run, "huggingface": huggingface_run}
HOOKS = {"lightning": ("on_train_batch_start", "on_before_backward", "on_before_optimizer_step"),
         "huggingface": ("on_pre_optimizer_step", "on_log", "_keep_inputs", "_keep_loss")}
hook_seconds: list[float] = []  # time spent inside the callback's per-step hooks, this run


def timed(cls, names):
    """``cls`` with each of its per-step hooks timed: a low-noise measure of the callback's own
    cost (the step-time difference is noisy where the CPU is shared)."""
    def wrap(method):
        def hook(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                hook_seconds.append(time.perf_counter() - start)
        return hook
    return type(cls.__name__, (cls,), {name: wrap(getattr(cls, name)) for name in names})


def measure(adapter: str, args, data, workdir: Path) -> dict:
    run = RUNS[adapter]
    run(args, data, True, workdir / f"{adapter}-warmup")  # imports, allocator, first-call costs
    times: dict[bool, list[dict]] = {True: [], False: []}
    for r in range(args.rounds):
        for with_callback in ((True, False) if r % 2 else (False, True)):
            hook_seconds.clear()
            times[with_callback].append(run(args, data, with_callback, workdir / f"{adapter}-{r}-{with_callback}"))
            times[with_callback][-1]["hooks_s"] = sum(hook_seconds) / args.steps
    ratios = [w["step_s"] / b["step_s"] - 1 for w, b in zip(times[True], times[False])]
    overhead = statistics.median(ratios)
    hooks_s = statistics.median(t["hooks_s"] for t in times[True])
    step_s = statistics.median(t["step_s"] for t in times[False])
    return {
        "hooks_s_per_step": hooks_s, "hooks_share": hooks_s / step_s, "hooks_target_met": hooks_s / step_s <= TARGET,
        "step_s_without": statistics.median(t["step_s"] for t in times[False]),
        "step_s_with": statistics.median(t["step_s"] for t in times[True]),
        "overhead": overhead, "overhead_min": min(ratios), "overhead_max": max(ratios),
        "overhead_per_round": ratios,
        "report_s_extra": statistics.median(w["report_s"] - b["report_s"] for w, b in zip(times[True], times[False])),
        "target": TARGET, "target_met": overhead <= TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per run; the callback records once")
    parser.add_argument("--rounds", type=int, default=5, help="runs with and without the callback, alternating")
    parser.add_argument("--adapters", default=",".join(ADAPTERS))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a couple of steps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.batch, args.steps, args.rounds = "resnet8", 4, 2, 1
    adapters = [a for a in args.adapters.split(",") if a]
    unknown = sorted(set(adapters) - set(ADAPTERS))
    if unknown or args.steps < 1 or args.rounds < 1 or args.batch < 1:
        parser.error(f"--adapters takes {', '.join(ADAPTERS)}; --steps, --rounds, --batch must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")  # Lightning's num_workers advice etc., once per run
    out = args.out or ROOT / "benchmarks" / "results" / "integrations_overhead-cpu.json"
    data = Images(args.batch * args.steps, 32)
    load_before = os.getloadavg()  # on a CPU shared with other jobs step times are slower and noisier
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = {a: measure(a, args, data, Path(tmp)) for a in adapters}
    result = {
        "benchmark": "integrations_overhead",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware_info("cpu"),
        "settings": {"model": args.model, "batch": args.batch, "image_size": 32, "steps_per_run": args.steps,
                     "records_per_run": 1, "rounds": args.rounds, "optimizer": "SGD momentum 0.9",
                     "smoke": args.smoke},
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "wall_s": round(time.perf_counter() - started, 1),
        "adapters": results,
    }
    write_json(out, result)
    for adapter, r in results.items():
        print(f"{adapter}: {r['step_s_without'] * 1e3:.0f} ms/step without, {r['step_s_with'] * 1e3:.0f} ms with: "
              f"overhead {100 * r['overhead']:+.1f}% (rounds {100 * r['overhead_min']:+.1f}% to "
              f"{100 * r['overhead_max']:+.1f}%), target {100 * TARGET:.0f}% "
              f"{'met' if r['target_met'] else 'NOT met'}; "
              f"inside the callback {r['hooks_s_per_step'] * 1e3:.1f} ms/step = {100 * r['hooks_share']:.2f}% "
              f"({'met' if r['hooks_target_met'] else 'NOT met'})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    main()
