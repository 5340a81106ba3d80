"""A model comparison in the terminal: the table, the settings that qualify it, the verdict."""

from __future__ import annotations

from ...report.text_table import format_table
from .reference import published_accuracy

COLUMNS = [("name", "model"), ("params", "params"), ("gflops", "GFLOPs"), ("layers", "layers"),
           ("input", "input"), ("memory", "train MiB"), ("train_images_per_s", "train img/s"),
           ("infer_images_per_s", "infer img/s"), ("latency_ms_batch1", "ms @ batch 1"),
           ("published", "published accuracy")]


def _settings_line(result: dict) -> str:
    s, hw = result["settings"], result["hardware"]
    return (f"{hw.get('gpu') or hw.get('cpu')} ({s['device']}), batch {s['batch_size']}, {s['precision']}"
            f"{', channels_last' if s['channels_last'] else ''}; {s['timing']}; memory: {s['memory_method']}.")


def compare_text(result: dict) -> str:
    """The table, the settings that qualify it, and the verdict sentences."""
    rows = [{**r, "input": f"{r['input_size']}x{r['input_size']}", "memory": r["peak_train_memory_mib"],
             "published": published_accuracy(r)} for r in result["models"]]
    lines = [format_table(rows, COLUMNS), "", _settings_line(result)]
    lines += [f"note: {n}." for n in result["settings"]["notes"]]
    if result["verdict"]:
        lines += ["", "verdict:"] + [f"- {v}" for v in result["verdict"]]
    return "\n".join(lines)
