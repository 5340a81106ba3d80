"""The reproductions as text: the Table 6 comparison (terminal or markdown) and the Fig. 6 verdict."""

from __future__ import annotations

from ...report.text_table import format_table
from ...text import counted
from ..degradation import degradation_text

COLUMNS = [("model", "network"), ("paper", "paper (%)"), ("reimpl", "akamaster (%)"), ("ours", "ours (%)"),
           ("n", "n"), ("seeds", "per seed (%)"), ("steps", "steps"), ("finding", "finding")]


def ours_text(ours: dict) -> str:
    """``7.12 ± 0.15`` (sample std over seeds), or ``7.12`` for one seed."""
    return f"{ours['mean']:.2f}" + (f" ± {ours['std']:.2f}" if ours["std"] is not None else "")


def _num(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.2f}"


def table6_rows(result: dict) -> list[dict]:
    """One row per depth: the paper's figure, the reimplementation's, ours and the verdict."""
    verdicts = result["findings"]["per_depth"]
    rows = []
    for d in result["depths"]:
        paper = _num(d["paper_error"])
        if d.get("paper_mean"):
            paper += f" (mean {d['paper_mean']['mean']:.2f} ± {d['paper_mean']['std']:.2f})"
        rows.append({"model": d["model"], "paper": paper, "reimpl": _num(d["reimplementation_error"]),
                     "ours": ours_text(d["ours"]), "n": d["ours"]["n"],
                     "seeds": " ".join(f"{v:.2f}" for v in d["ours"]["per_seed"]),
                     "steps": f"{result['settings']['steps']:,}", "finding": verdicts[str(d["depth"])]["text"]})
    return rows


def table6_text(result: dict, markdown: bool = False) -> str:
    """The table, then the findings; test error at the end of training, on the full test set."""
    s = result["settings"]
    lines = [format_table(table6_rows(result), COLUMNS, markdown=markdown), "",
             f"Test error (%) at the end of training on the whole test split; {s['data_description']}, recipe paper, "
             f"{counted(s['steps'], 'step')}{'' if s['papers_budget'] else ' (not the paper schedule)'}, "
             f"{result['hardware'].get('gpu') or result['hardware']['cpu']}, {result['date']}.", "", "findings:"]
    return "\n".join(lines + [f"- {t}" for t in result["findings"]["text"]])


def fig6_text(result: dict) -> str:
    """The degradation table and findings, then the two halves of the paper's pattern."""
    r = result["reproduce"]
    budget = (f"{counted(r['steps'], 'step')}, the paper's schedule" if r["papers_budget"]
              else f"{counted(r['steps'], 'step')}, not the paper schedule ({r['paper_steps']:,})")
    lines = [degradation_text(result), "", f"Fig. 6 pattern ({budget}):"]
    return "\n".join(lines + [f"- {t}" for t in r["pattern"]["text"]])
