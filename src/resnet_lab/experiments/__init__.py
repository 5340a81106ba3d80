"""Experiments: measurements that return data (plots and printing live elsewhere)."""

from .compare import compare_models, reference_top1, saved_tensor_bytes

__all__ = ["compare_models", "reference_top1", "saved_tensor_bytes"]

from .survey import DEMO_SETTINGS as SURVEY_DEMO_SETTINGS, judge_claims, run_survey  # noqa: E402

__all__ += ["SURVEY_DEMO_SETTINGS", "judge_claims", "run_survey"]

from .degradation import run_degradation  # noqa: E402
from .degradation_report import write_degradation_outputs  # noqa: E402

__all__ += ["run_degradation", "write_degradation_outputs"]
