"""Gradient diagnostics: per-layer gradient flow, verdicts, NaN/Inf location, logs and plots.

The pieces:

* ``GradientMonitor`` (``monitor``): call ``monitor.step(loss)`` after ``loss.backward()``;
  it records per layer group the gradient norm, weight norm and update ratio with one
  fused computation and no host synchronisation, and judges the run.
* ``Verdict`` / ``Thresholds`` (``verdicts``): healthy, vanishing, exploding, nonfinite.
* ``build_groups`` / ``LayerGroup`` (``groups``): stem / residual blocks / head, or any
  model's top-level children.
* ``locate_nonfinite`` / ``NonFiniteReport`` / ``NonFiniteError`` / ``nonfinite_state``
  (``nonfinite``): where a NaN/Inf first appeared, and checkpoint safety.
* ``Rollback`` (``rollback``): settings of the rollback policy (last good state, lower lr, go on).
* ``JsonlWriter`` / ``read_jsonl`` / ``TensorBoardLogger`` (``records``): outputs.
* ``gradient_table`` / ``average_groups`` (``table``): text for the CLI.
* ``run_gradient_check`` (``check``): N monitored training steps -> verdict, for the CLI.
* ``plot_gradient_flow`` / ``plot_heatmap`` / ``plot_loss`` (``plots``): imported on first
  use, so that importing the package does not import matplotlib.
"""

from .check import run_gradient_check
from .groups import GROUPINGS, LayerGroup, build_groups
from .monitor import POLICIES, GradientMonitor
from .nonfinite import NonFiniteError, NonFiniteReport, locate_nonfinite, nonfinite_state, tensor_stats
from .records import JsonlWriter, TensorBoardLogger, read_jsonl
from .rollback import Rollback
from .table import average_groups, gradient_table
from .verdicts import KINDS, Thresholds, Verdict

_PLOTS = ("plot_gradient_flow", "plot_heatmap", "plot_loss")

__all__ = [
    "GROUPINGS", "KINDS", "POLICIES", "GradientMonitor", "JsonlWriter", "LayerGroup", "NonFiniteError",
    "NonFiniteReport", "Rollback", "TensorBoardLogger", "Thresholds", "Verdict", "average_groups", "build_groups",
    "gradient_table", "locate_nonfinite", "nonfinite_state", "read_jsonl", "run_gradient_check",
    "tensor_stats", *_PLOTS,
]


def __getattr__(name: str):
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
