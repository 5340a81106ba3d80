"""What a training run's report is drawn from, read from its run directory alone.

The files are those `resnet-lab train` writes (see ``training/run_files.py``): ``config.json``,
``metrics.jsonl``, ``steps.jsonl``, ``events.json`` and, once the run has finished, ``result.json``. Never a
checkpoint: drawing a report needs no ``torch.load``, and a stopped run may have none. A run
without ``result.json`` (stopped, or still training) is read from its records so far.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..files import as_path, runs_inside

# config.json holds the settings and, beside them, these records (run_files.py, _config_record).
_NOT_SETTINGS = ("resolved", "data_info", "hardware", "world_size")
# What the report reads from each metrics row (evaluation values are None on epochs without one),
# and from each row of the finer curve.
_ROW_KEYS = ("epoch", "step", "train_loss", "train_acc", "test_acc", "images_per_s", "elapsed_s")
_STEP_ROW_KEYS = ("step", "epoch", "train_loss", "train_error")


@dataclass
class RunRecord:
    settings: dict  # TrainConfig fields as run
    data_info: dict  # description, eval_split, ...
    history: list[dict]  # metrics.jsonl: one row per epoch
    events: list[dict]  # events.json
    steps: int
    best_acc: float | None
    hardware: dict  # hardware_info of the process that finished the run (or started it, when unfinished)
    timings: dict | None  # the last process's (setup, training, evaluation, bookkeeping); None when unfinished
    finished: bool
    # The run's time over all its processes (each earlier one up to its last checkpoint), at its end
    # or its last epoch; None when not recorded (no epoch ended, or runs of earlier versions).
    run_time_s: float | None = None
    processes: int | None = None  # that trained the finished run; None when unfinished or not recorded
    step_history: list[dict] = field(default_factory=list)  # steps.jsonl: every --log-every steps, if set

    @property
    def device(self) -> str:
        return str(self.hardware.get("device", "cpu"))

    @property
    def devices(self) -> str:
        """The device, and how many ranks trained side by side, one each, under torchrun: 'cpu x 2 ranks'."""
        ranks = self.hardware.get("world_size", 1)
        return f"{self.device} x {ranks} ranks" if isinstance(ranks, int) and ranks > 1 else self.device


def read_run(run_dir: str | Path) -> RunRecord:
    """The run in ``run_dir``; a ``UserError`` (one line: what is wrong, how to fix it) when the
    folder is not a run directory or one of its files is damaged."""
    run_dir = as_path(run_dir, "run_dir", give="the run directory that 'resnet-lab train --out' wrote")
    if not run_dir.is_dir():
        what = "is not a directory" if run_dir.exists() else "does not exist"
        raise UserError(f"{run_dir} {what}; give the run directory that 'resnet-lab train --out' wrote")
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json); " + (
            runs_inside(run_dir) or "give the folder that 'resnet-lab train --out' wrote"))
    config = _read_json(run_dir / "config.json", dict)
    if not isinstance(config.get("model"), str) and "data_info" not in config:  # another tool's (a model hub's)
        raise UserError(f"{run_dir} is not a run directory (its config.json is not one 'resnet-lab train' wrote); "
                        + (runs_inside(run_dir) or "give the folder that 'resnet-lab train --out' wrote"))
    result = _read_json(run_dir / "result.json", dict) if (run_dir / "result.json").exists() else None
    if result is not None and (wrong := _wrong_result_values(result)):
        raise UserError(f"{run_dir / 'result.json'} is damaged (not a number where one belongs: "
                        f"{', '.join(wrong)}); {_FIX}")
    events = _read_json(run_dir / "events.json", list) if (run_dir / "events.json").exists() else []
    if not all(isinstance(e, dict) and isinstance(e.get("step"), int) and isinstance(e.get("kind"), str)
               for e in events):
        raise UserError(f"{run_dir / 'events.json'} is damaged (an event without its step and kind); {_FIX}")
    history = _read_rows(run_dir / "metrics.jsonl", _ROW_KEYS, _wrong_row_values)
    try:
        record = RunRecord(settings={k: v for k, v in config.items() if k not in _NOT_SETTINGS},
                           data_info=dict(config["data_info"]), history=history, events=events,
                           steps=history[-1]["step"] if history else 0, best_acc=_best_acc(history),
                           hardware=dict(config.get("hardware") or {}), timings=None, finished=result is not None,
                           run_time_s=history[-1].get("run_time_s") if history else None,
                           step_history=_read_rows(run_dir / "steps.jsonl", _STEP_ROW_KEYS))
        if result is not None:
            record.settings.update(result["config"])
            record.steps, record.best_acc = int(result["steps"]), result["best_acc"]
            record.hardware, record.timings = dict(result["hardware"]), dict(result["timings"])
            record.run_time_s, record.processes = result.get("run_time_s"), result.get("processes")
        world_size = (result or {}).get("world_size", config.get("world_size"))  # absent from earlier versions
        if world_size is not None:  # the hardware is each rank's: the report says how many trained side by side
            record.hardware["world_size"] = world_size
        missing = [k for k in ("model", "seed") if k not in record.settings] + \
                  [k for k in ("description", "eval_split") if k not in record.data_info]
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{run_dir} has a damaged record (config.json or result.json: {err!r}); {_FIX}") from None
    if missing:
        raise UserError(f"{run_dir / 'config.json'} is damaged (no {', '.join(missing)}); {_FIX}")
    return record


_FIX = "restore the file, or train the run again: the report is drawn from what 'resnet-lab train' wrote"


def _read_json(path: Path, kind: type):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} cannot be read ({err}); {_FIX}") from None
    if not isinstance(value, kind):
        raise UserError(f"{path} is damaged (a JSON {type(value).__name__}, not a {kind.__name__}); {_FIX}")
    return value


def _read_rows(path: Path, keys: tuple[str, ...], wrong_values=lambda row: []) -> list[dict]:
    """metrics.jsonl or steps.jsonl, strictly: each is rewritten whole and atomically, so any bad
    line is damage; each row has a number for every one of ``keys`` (``test_acc`` may be None) and
    nothing that ``wrong_values`` names (what is wrong, as 'no number for X')."""
    if not path.exists():
        return []  # stopped before its first epoch ended, or no --log-every
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path} cannot be read ({err}); {_FIX}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise UserError(f"{path} is damaged (line {number}: {err}); {_FIX}") from None
        missing = [k for k in keys if not _is_number(row.get(k), k == "test_acc")] \
            if isinstance(row, dict) else ["record"]
        wrong = [f"no number for {', '.join(missing)}"] if missing else wrong_values(row)
        if wrong:
            raise UserError(f"{path} is damaged (line {number} has {'; '.join(wrong)}); {_FIX}")
        rows.append(row)
    return rows


def _wrong_result_values(result: dict) -> list[str]:
    """result.json's numbers that are not numbers (hand-edited): each is formatted into the page, where
    text would end in a traceback. A missing key is left to the reader, which names it."""
    timings = result.get("timings")
    wrong = [k for k in ("steps", "best_acc", "run_time_s", "processes")
             if k in result and not _is_number(result[k], k != "steps")]
    if isinstance(timings, dict) and not all(_is_number(v, True) for v in timings.values()):
        wrong.append("timings")
    return wrong


def _wrong_row_values(row: dict) -> list[str]:
    """A metrics row's values beside the required numbers that the page formats: the evaluation loss
    (beside its accuracy) and the gradient monitor's summary, when there is one."""
    wrong = [] if _is_number(row.get("test_loss"), row.get("test_acc") is None) else ["no number for test_loss"]
    gradients = row.get("gradients", {"verdict": "", "reason": ""})
    groups = gradients.get("groups", []) if isinstance(gradients, dict) else None
    if not (isinstance(groups, list) and isinstance(gradients.get("verdict"), str)
            and isinstance(gradients.get("reason"), str)
            and all(isinstance(g, dict) and isinstance(g.get("name"), str) and _is_number(g.get("depth_index"), False)
                    and _is_number(g.get("grad_norm"), True) for g in groups)):
        wrong.append("a damaged gradient summary")
    return wrong


def _is_number(value, none_ok: bool) -> bool:
    return (value is None and none_ok) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _best_acc(history: list[dict]) -> float | None:
    """As the trainer keeps it: the best accuracy of the evaluated epochs."""
    evaluated = [r["test_acc"] for r in history if r["test_acc"] is not None and math.isfinite(r["test_loss"])]
    return max(evaluated) if evaluated else None
