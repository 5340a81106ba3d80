"""The degradation experiment in the terminal: a table of final errors, the run's settings, the findings."""

from __future__ import annotations

from ...report.text_table import format_table
from ...text import counted

def eval_split(result_or_settings: dict) -> str:
    """``test``, or ``val`` when the nets were judged on images held out of the training set (``val_split``)."""
    settings = result_or_settings.get("settings", result_or_settings)
    return settings.get("eval_split", "test")


def columns(split: str) -> list[tuple[str, str]]:
    return [("model", "network"), ("depth", "depth"), ("shortcut", "shortcut"), ("params", "params"),
            ("train", "final train error"), ("test", f"final {split} error"), ("time", "time (s)")]


def with_spread(net: dict, key: str) -> str:
    """``12.34%``, or ``12.34% ± 0.56`` (sample std over seeds) when the net ran with several seeds."""
    if len(net.get("seeds", [])) > 1:
        return f"{100 * net[key]:.2f}% ± {100 * net[key + '_std']:.2f}"
    return "\u2014" if net[key] is None else f"{100 * net[key]:.2f}%"


def shortcut_of(net: dict) -> str:
    """The net's shortcut option (``none`` for a plain net), also for results written before it was recorded."""
    return net["shortcut_option"] if "shortcut_option" in net else ("A" if net["shortcut"] else "none")


def run_length_text(total_steps: int | None, epochs_run: int | None, steps_per_epoch: int | None) -> str:
    """``330 steps (15 epochs x 22)`` as the trainer says it (a run of ``--steps`` may end mid-epoch);
    ``15 epochs`` when an epoch's length is unknown (folder data)."""
    if not (total_steps and steps_per_epoch):
        return counted(epochs_run, "epoch")
    return f"{total_steps:,} steps ({counted(epochs_run, 'epoch')} x {steps_per_epoch})"


def _settings_line(result: dict) -> str:
    s = result["settings"]
    length = run_length_text(s.get("total_steps"), s["epochs_run"], s["steps_per_epoch"])
    return (f"{s['data_description']}; recipe {s['recipe']}, {length}, seeds {' '.join(map(str, s['seeds']))}, "
            f"{s['device']}; run time {result['run_time_s']:.1f} s.")


def degradation_text(result: dict) -> str:
    """The table of final errors, the settings and the findings sentences."""
    rows = [{"model": n["model"], "depth": n["depth"], "shortcut": shortcut_of(n), "params": n["params"],
             "train": with_spread(n, "final_train_error"), "test": with_spread(n, "final_test_error"),
             "time": f"{n['time_s']:.1f}"} for n in result["networks"]]
    lines = [format_table(rows, columns(eval_split(result))), "", _settings_line(result), "", "findings:"]
    lines += [f"- {t}" for t in result["findings"]["text"]]
    return "\n".join(lines)
