"""Writing monitor records: JSON Lines files and TensorBoard scalars/histograms.

A record is a plain dict::

    {"step": 12, "loss": 2.31, "global_grad_norm": 1.7, "global_weight_norm": 41.2,
     "groups": [{"name": "stem", "depth_index": 0, "grad_norm": 0.8,
                 "weight_norm": 5.1, "update_ratio": 0.0012}, ...],
     "activations": [{"name": "layer1.0", "depth_index": 1, "mean": 0.4, "std": 0.7,
                      "dead_fraction": 0.0}, ...],          # only with track_activations
     "verdict": "healthy", "reason": "..."}

In JSONL, non-finite floats are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``
so that every line is strict JSON; ``read_jsonl`` turns them back into floats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..files import atomic_write_text

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _restore(obj):
    if isinstance(obj, str) and obj in _NONFINITE:
        return _NONFINITE[obj]
    if isinstance(obj, dict):
        return {k: (v if k in ("name", "reason", "verdict") else _restore(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore(v) for v in obj]
    return obj


def dumps(record: dict) -> str:
    """One record as one line of strict JSON."""
    return json.dumps(_jsonable(record), allow_nan=False)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read records written by ``JsonlWriter`` (non-finite values come back as floats).

    A torn last line (a process killed mid-write: no newline at its end) is ignored; a
    damaged line anywhere else raises ``ValueError`` naming the line.
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and not text.endswith("\n"):
        lines.pop()  # torn: the record was never completed
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(_restore(json.loads(line)))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not a JSON record ({err})") from None
    return records


def trim_jsonl(path: str | Path, keep) -> list[dict]:
    """Rewrite ``path`` (atomically) with only the records for which ``keep(record)`` is true, and
    return them (none when there is no file).

    Used on resume: records of steps after the checkpoint are written again by the replay. A
    damaged file is refused in one line (``UserError``) and left as it is.
    """
    from ..errors import UserError

    path = Path(path)
    if not path.exists():
        return []
    try:
        kept = [r for r in read_jsonl(path) if keep(r)]
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is damaged ({err}); restore it, or delete it to go on without the records "
                        "it held") from None
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in kept))
    return kept


def trim_monitor_records(path: str | Path, before_step: int) -> list[dict]:
    """``trim_jsonl`` for the monitor's own file: its records of the steps before ``before_step`` (what a
    resumed run judges again, ``GradientMonitor.continue_from``). A line that is JSON but not a monitor's record
    (no step, norms or groups: ``null``, ``[1, 2]``, ``{"step": "y"}``) is refused as a damaged line is."""
    return trim_jsonl(path, lambda record: _monitor_record_step(record) < before_step)


def _monitor_record_step(record) -> int:
    """The step of one of the monitor's records; ``ValueError`` saying what is missing when it is not one."""
    def number(value, optional=False):
        return (value is None and optional) or (isinstance(value, (int, float)) and not isinstance(value, bool))

    if not isinstance(record, dict):
        raise ValueError(f"a record is {json.dumps(record)[:40]}, not an object")
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"a record's step is {step!r}, not a step number")
    groups = record.get("groups")
    if not (number(record.get("loss"), optional=True) and number(record.get("global_grad_norm"))
            and number(record.get("global_weight_norm")) and isinstance(groups, list)
            and all(isinstance(g, dict) and number(g.get("grad_norm"), True) and number(g.get("weight_norm"), True)
                    for g in groups)):
        raise ValueError(f"the record of step {step} lacks the monitor's norms or groups")
    return step


class JsonlWriter:
    """Appends one JSON line per record (append mode, so a resumed run continues its file)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(dumps(record) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


# Quantities per group that get one TensorBoard chart each (all depths on the same chart).
_GROUP_SCALARS = ("grad_norm", "weight_norm", "update_ratio")
_ACT_SCALARS = ("mean", "std", "dead_fraction")


class TensorBoardLogger:
    """Writes records as scalars so that one chart shows one quantity at all depths.

    Why this layout: ``SummaryWriter.add_scalars`` would give one chart, but it writes one
    event file (a sub-run) per depth, which clutters the run list with dozens of fake runs.
    Instead each value is a plain scalar tagged ``grad_norm/07.layer2.1`` (depth first, so
    tags sort by depth) in the run's single event file, and a *custom scalars* layout with a
    ``Multiline`` chart per quantity (tag regex ``grad_norm/.*``) shows all depths on one
    chart in the "Custom Scalars" tab. The plain "Scalars" tab groups the same tags under
    one ``grad_norm`` section.
    """

    def __init__(self, writer):
        if isinstance(writer, (str, Path)):
            from torch.utils.tensorboard import SummaryWriter

            writer, self._owned = SummaryWriter(str(writer)), True
        else:
            self._owned = False
        self.writer = writer
        self._layout_written = False

    def _write_layout(self) -> None:
        charts = {f"{q} (all depths)": ["Multiline", [f"^{q}/.*"]] for q in _GROUP_SCALARS}
        charts.update({f"activation {q} (all depths)": ["Multiline", [f"^activation_{q}/.*"]]
                       for q in _ACT_SCALARS})
        charts["global gradient norm and loss"] = ["Multiline", ["^global/.*"]]
        self.writer.add_custom_scalars({"gradients": charts})
        self._layout_written = True

    def write(self, record: dict) -> None:
        if not self._layout_written:
            self._write_layout()
        step, add = record["step"], self.writer.add_scalar
        add("global/grad_norm", record["global_grad_norm"], step)
        if record.get("loss") is not None:
            add("global/loss", record["loss"], step)
        for g in record["groups"]:
            tag = f"{g['depth_index']:02d}.{g['name']}"
            for q in _GROUP_SCALARS:
                if g.get(q) is not None:
                    add(f"{q}/{tag}", g[q], step)
        for a in record.get("activations", ()):
            tag = f"{a['depth_index']:02d}.{a['name']}"
            for q in _ACT_SCALARS:
                add(f"activation_{q}/{tag}", a[q], step)

    def histograms(self, step: int, named_values: list[tuple[str, torch.Tensor]]) -> None:
        """One histogram per group (values already flattened and on the CPU)."""
        for tag, values in named_values:
            finite = values[torch.isfinite(values)]
            if finite.numel():
                self.writer.add_histogram(tag, finite, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        if self._owned:
            self.writer.close()
