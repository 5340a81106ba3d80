"""Experiments, one package each: ``run`` returns data, ``findings`` judges it in sentences,
``table`` prints it, ``report`` writes it (returning the paths written), ``plot`` draws it.

- ``degradation``: plain vs residual nets of several depths (He et al. Fig. 1 and 6).
- ``survey``: one switch at a time, each common claim next to its measurement.
- ``compare``: models measured side by side on this machine.
- ``demo`` (``run_demo``): all three, one report.
"""

from ..lazy import lazy_exports

_MODULES = {
    ".compare": ["compare_models", "reference_top1"],
    ".degradation": ["run_degradation", "write_degradation_outputs"],
    ".survey": ["DEMO_SETTINGS as SURVEY_DEMO_SETTINGS", "judge_claims", "run_survey"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
