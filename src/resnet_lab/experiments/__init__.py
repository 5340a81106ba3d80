"""Experiments: each returns data; *_plot modules draw it, *_report modules write it.

- ``run_degradation``: plain vs residual nets of several depths (He et al. Fig. 1 and 6).
- ``run_survey``: one switch at a time, each common claim next to its measurement.
- ``compare_models``: models measured side by side on this machine.
- ``run_demo`` (``demo``): all three, one report.
"""

from .compare import compare_models, reference_top1, saved_tensor_bytes
from .degradation import run_degradation
from .degradation_report import write_degradation_outputs
from .survey import DEMO_SETTINGS as SURVEY_DEMO_SETTINGS
from .survey import judge_claims, run_survey

__all__ = ["SURVEY_DEMO_SETTINGS", "compare_models", "judge_claims", "reference_top1", "run_degradation",
           "run_survey", "saved_tensor_bytes", "write_degradation_outputs"]
