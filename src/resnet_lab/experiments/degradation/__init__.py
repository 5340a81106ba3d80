"""The degradation experiment (He et al. 2015, Fig. 1 and Fig. 6): plain vs residual nets of several depths.

- ``run``: ``run_degradation`` trains the nets and returns data (``networks``: the per-network entries);
- ``findings``: whether degradation showed up, judged from the measured errors and said in sentences;
- ``table``: the terminal table (``degradation_text``);
- ``report``: ``write_degradation_outputs`` writes results.json, the figures and report.html and
  returns their paths;
- ``plot``: the figures (the only module here that imports matplotlib; imported when drawing).
"""

from .findings import TIE
from .networks import model_name, snapshot_epochs
from .report import add_degradation_section, report_figures, write_degradation_outputs
from .run import check_depths, check_seeds, limit_dataset, run_degradation
from .table import degradation_text

__all__ = ["TIE", "add_degradation_section", "check_depths", "check_seeds", "degradation_text", "limit_dataset",
           "model_name", "report_figures", "run_degradation", "snapshot_epochs", "write_degradation_outputs"]
