"""A survey in the terminal: the table of cells (one row per cell, medians over the seeds with their
min..max), the run's settings, the claims with their verdict, budget and evidence."""

from __future__ import annotations

from ...report.text_table import format_table
from ...text import counted
from .findings import (CONTRADICTED, INCONCLUSIVE, NOT_MEASURED, SUPPORTED, fmt, fmt_ratio, outcome_counts, pct,
                       spread, verdict_counts)

# (key, header) of the table; the values are made by cell_rows.
COLUMNS = [("name", "cell"), ("grad_first", "grad first"), ("grad_last", "grad last"), ("ratio", "first/last"),
           ("verdict", "monitor"), ("loss_start", "loss start"), ("loss_end", "loss end"), ("drop", "drop"),
           ("steps_to_90", "->90%"), ("steps_to_half", "->50%"), ("outcome", "outcome"), ("time_s", "s")]
# Verdicts as printed: an inconclusive one names why (the budget, not the network).
MARKS = {SUPPORTED: "SUPPORTED", CONTRADICTED: "CONTRADICTED", INCONCLUSIVE: "INCONCLUSIVE at this budget",
         NOT_MEASURED: "NOT MEASURED"}


def _g(x):
    """Gradient norms span 30 orders of magnitude: 3 significant digits."""
    return None if x is None else float(f"{x:.3g}")


def _f(x):
    return None if x is None else round(x, 3)


def cell_rows(result: dict) -> list[dict]:
    """One row per cell, its numbers rounded for reading (for ``COLUMNS``): medians over the seeds;
    first/last and the drop with their min..max, the outcome and the monitor's verdict with their counts
    over the seeds where the seeds disagree."""
    rows = []
    for c in result["cells"]:
        unanimous = len(c["outcomes"]) == 1
        rows.append({**c, "drop": spread(c, "loss_drop", pct), "grad_first": _g(c["grad_first"]),
                     "grad_last": _g(c["grad_last"]), "ratio": spread(c, "ratio", fmt_ratio),
                     "loss_start": _f(c["loss_start"]), "loss_end": _f(c["loss_end"]),
                     "outcome": c["outcome"] if unanimous else outcome_counts(c),
                     "verdict": c["verdict"] if len(c["verdicts"]) == 1 else verdict_counts(c),
                     "time_s": round(c["time_s"], 1)})
    return rows


def run_line(r: dict) -> str:
    """One seed's measurements of a cell in one line (the progress lines)."""
    return (f"first/last {fmt_ratio(r['ratio'])}, loss {fmt(r['loss_start'])} -> {fmt(r['loss_end'])} "
            f"({r['outcome']}), {r['verdict']}")


def mark(verdict: str) -> str:
    return MARKS[verdict]


def budget_text(budget: dict | None) -> str:
    """``3 seeds x 24 steps`` or ``3 seeds, gradients at init over 2 batches``; empty when nothing was measured."""
    if not budget:
        return ""
    seeds = counted(budget['seeds'], 'seed')
    if "steps" in budget:
        return f"{seeds} x {counted(budget['steps'], 'step')}"
    n = budget["batches_at_init"]
    return f"{seeds}, gradients at init over {counted(n, 'batch', 'batches')}"


def claim_lines(result: dict, evidence: str = "Evidence: ", bold: bool = False) -> list[str]:
    """One line per claim: verdict and budget, the claim, the evidence (medians with min..max over the
    seeds); ``bold``: the verdict in Markdown bold."""
    lines = []
    for c in result["claims"]:
        budget = budget_text(c["budget"])
        verdict = f"**{mark(c['verdict'])}**" if bold else mark(c["verdict"])
        lines.append(f"{verdict}{f' ({budget})' if budget else ''}: {c['claim']}. {evidence}{c['evidence']}")
    return lines


def survey_table(result: dict, markdown: bool = False) -> str:
    """The table of cells (one row per cell), for the terminal or (``markdown``) as Markdown."""
    return format_table(cell_rows(result), COLUMNS, markdown=markdown)


def settings_line(result: dict) -> str:
    """The run in one line: data, sizes, rules of the short runs, cells, time and hardware."""
    s, hw = result["settings"], result["hardware"]
    where = hw.get("gpu") or hw.get("cpu") or s["device"]
    batches = counted(s["batches_at_init"], "batch", "batches")
    seeds = s["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]})"
    return (f"{result['data']}, run at {s['image_size']}px; batch {s['batch_size']}, {s['steps']} SGD steps "
            f"(momentum {s['momentum']}) at lr {s['lr']:g}; gradients at init averaged over {batches}; "
            f"high lr {s['high_lr']:g} with clip_norm {s['clip_norm']:g}; {seed_text}; "
            f"{len(result['cells'])} cells in {result['run_time_s']:.1f} s on {where} ({_workers(s)})")


def _workers(s: dict) -> str:
    """``cpu, 1 thread``; measured as a sweep: ``2 jobs per device of 1 thread on cpu``."""
    threads = counted(s['threads'], 'thread')
    if not s.get("jobs"):
        return f"{s['device']}, {threads}"
    return f"{counted(s['jobs'], 'job')} per device of {threads} on {', '.join(s['devices'])}"


def survey_text(result: dict) -> str:
    """The terminal output: table, settings, claims."""
    lines = [survey_table(result), "", settings_line(result), "", "claims:"]
    lines += [f"- {line}" for line in claim_lines(result)]
    return "\n".join(lines)
