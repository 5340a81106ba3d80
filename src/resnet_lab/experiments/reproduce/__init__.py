"""Reproducing He et al. (2015) on CIFAR-10: Table 6 and Fig. 6, with the paper's recipe.

- ``paper``: the published figures (the paper's Table 6, a public reimplementation's) and budget;
- ``table6``: ``run_table6`` trains resnet{depth} x seeds on the sweep engine and returns data;
- ``fig6``: ``run_fig6``, the degradation experiment at the paper's depths and recipe;
- ``combined``: ``run_all``, both from one sweep (their ResNets trained once);
- ``findings``: the verdicts, from the numbers only (per depth; the two halves of Fig. 6);
- ``table``: terminal and markdown tables; ``plot``: the Table 6 curves (matplotlib);
- ``report``: ``write_table6_outputs`` / ``write_fig6_outputs``: results.json, tables, report.html.
"""

from ...lazy import lazy_exports

_MODULES = {
    ".combined": ["run_all"],
    ".fig6": ["run_fig6"],
    ".findings": ["fig6_pattern", "table6_findings", "table6_verdict"],
    ".paper": ["PAPER_STEPS", "TABLE6"],
    ".report": ["write_fig6_outputs", "write_table6_outputs"],
    ".table": ["fig6_text", "table6_text"],
    ".table6": ["run_table6"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
