"""A survey in the terminal: the table of cells (one row per cell), the run's settings, the claims."""

from __future__ import annotations

from ...report.text_table import format_table

# (key, header) of the table; the values are made by cell_rows.
COLUMNS = [("name", "cell"), ("grad_first", "grad first"), ("grad_last", "grad last"), ("ratio", "first/last"),
           ("verdict", "monitor"), ("loss_start", "loss start"), ("loss_end", "loss end"), ("drop", "drop"),
           ("steps_to_90", "->90%"), ("steps_to_half", "->50%"), ("outcome", "outcome"), ("time_s", "s")]


def _g(x):
    """Gradient norms span 30 orders of magnitude: 3 significant digits."""
    return None if x is None else float(f"{x:.3g}")


def _f(x):
    return None if x is None else round(x, 3)


def cell_rows(result: dict) -> list[dict]:
    """One row per cell, its numbers rounded for reading (for ``COLUMNS``)."""
    rows = []
    for c in result["cells"]:
        drop = None if c["loss_drop"] is None else f"{100 * c['loss_drop']:.0f}%".replace("-0%", "0%")
        rows.append({**c, "drop": drop, "grad_first": _g(c["grad_first"]), "grad_last": _g(c["grad_last"]),
                     "ratio": _g(c["ratio"]), "loss_start": _f(c["loss_start"]), "loss_end": _f(c["loss_end"]),
                     "time_s": round(c["time_s"], 1)})
    return rows


def mark(supported) -> str:
    return {True: "SUPPORTED", False: "CONTRADICTED", None: "NOT MEASURED"}[supported]


def claim_lines(result: dict, evidence: str = "Evidence: ") -> list[str]:
    """One line per claim: verdict, the claim, the evidence."""
    return [f"{mark(c['supported'])}: {c['claim']}. {evidence}{c['evidence']}" for c in result["claims"]]


def survey_table(result: dict, markdown: bool = False) -> str:
    """The table of cells (one row per cell), for the terminal or (``markdown``) as Markdown."""
    return format_table(cell_rows(result), COLUMNS, markdown=markdown)


def settings_line(result: dict) -> str:
    """The run in one line: data, sizes, rules of the short runs, cells, time and hardware."""
    s, hw = result["settings"], result["hardware"]
    where = hw.get("gpu") or hw.get("cpu") or s["device"]
    batches = f"{s['batches_at_init']} batch{'es' if s['batches_at_init'] != 1 else ''}"
    return (f"{result['data']}, run at {s['image_size']}px; batch {s['batch_size']}, {s['steps']} SGD steps "
            f"(momentum {s['momentum']}) at lr {s['lr']:g}; gradients at init averaged over {batches}; "
            f"high lr {s['high_lr']:g} with clip_norm {s['clip_norm']:g}; seed {s['seed']}; "
            f"{len(result['cells'])} cells in {result['run_time_s']:.1f} s on {where} ({s['device']}, "
            f"{s['threads']} thread{'s' if s['threads'] != 1 else ''})")


def survey_text(result: dict) -> str:
    """The terminal output: table, settings, claims."""
    lines = [survey_table(result), "", settings_line(result), "", "claims:"]
    lines += [f"- {line}" for line in claim_lines(result)]
    return "\n".join(lines)
