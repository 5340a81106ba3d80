"""Experiments, one package each: ``run`` returns data, ``findings`` judges it in sentences,
``table`` prints it, ``report`` writes it (returning the paths written), ``plot`` draws it.

- ``degradation``: plain vs residual nets of several depths (He et al. Fig. 1 and 6).
- ``survey``: one switch at a time, each common claim next to its measurement.
- ``compare``: models measured side by side on this machine.
- ``demo`` (``run_demo``): all three, one report.
"""

from ..measure import saved_tensor_bytes
from .compare import compare_models, reference_top1
from .degradation import run_degradation, write_degradation_outputs
from .survey import DEMO_SETTINGS as SURVEY_DEMO_SETTINGS
from .survey import judge_claims, run_survey

__all__ = ["SURVEY_DEMO_SETTINGS", "compare_models", "judge_claims", "reference_top1", "run_degradation",
           "run_survey", "saved_tensor_bytes", "write_degradation_outputs"]
