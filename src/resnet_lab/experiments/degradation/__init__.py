"""The degradation experiment (He et al. 2015, Fig. 1 and Fig. 6): plain vs residual nets of several depths.

- ``run``: ``run_degradation`` trains the nets and returns data (``networks``: the per-network entries);
- ``findings``: whether degradation showed up, judged from the measured errors and said in sentences;
- ``table``: the terminal table (``degradation_text``);
- ``report``: ``write_degradation_outputs`` writes results.json, the figures and report.html and
  returns their paths;
- ``plot``: the figures (the only module here that imports matplotlib; imported when drawing).
"""

from ...lazy import lazy_exports

_MODULES = {
    ".findings": ["TIE"],
    ".networks": ["snapshot_epochs"],
    ".report": ["add_degradation_section", "report_figures", "write_degradation_outputs"],
    ".run": ["check_depths", "check_seeds", "run_degradation"],
    ".table": ["degradation_text"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
