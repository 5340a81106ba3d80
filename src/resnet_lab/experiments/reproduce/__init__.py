"""Reproducing He et al. (2015) on CIFAR-10: Table 6 and Fig. 6, with the paper's recipe.

- ``paper``: the published figures (the paper's Table 6, a public reimplementation's) and budget;
- ``table6``: ``run_table6`` trains resnet{depth} x seeds on the sweep engine and returns data;
- ``fig6``: ``run_fig6``, the degradation experiment at the paper's depths and recipe;
- ``combined``: ``run_all``, both from one sweep (their ResNets trained once);
- ``findings``: the verdicts, from the numbers only (per depth; the two halves of Fig. 6);
- ``table``: terminal and markdown tables; ``plot``: the Table 6 curves (matplotlib);
- ``report``: ``write_table6_outputs`` / ``write_fig6_outputs``: results.json, tables, report.html.
"""

from .combined import run_all
from .fig6 import run_fig6
from .findings import fig6_pattern, table6_findings, table6_verdict
from .paper import PAPER_STEPS, TABLE6
from .report import write_fig6_outputs, write_table6_outputs
from .table import fig6_text, table6_text
from .table6 import run_table6

__all__ = ["PAPER_STEPS", "TABLE6", "fig6_pattern", "fig6_text", "run_all", "run_fig6", "run_table6", "table6_findings",
           "table6_text", "table6_verdict", "write_fig6_outputs", "write_table6_outputs"]
