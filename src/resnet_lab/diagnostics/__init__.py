"""Gradient diagnostics: per-layer gradient flow, verdicts, NaN/Inf location, logs and plots.

The pieces:

* ``GradientMonitor`` (``monitor``): call ``monitor.step(loss)`` after ``loss.backward()``;
  it records per layer group the gradient norm, weight norm and update ratio with one
  fused computation and no host synchronisation, and judges the run. Its NaN/Inf policy
  (``guarded_step``, ``check_step``: skip, stop, roll back, warn) is ``policy``.
* ``Verdict`` / ``Thresholds`` (``verdicts``): healthy, vanishing, exploding, nonfinite.
* ``build_groups`` / ``LayerGroup`` (``groups``): stem / residual blocks / head, or any
  model's top-level children.
* ``locate_nonfinite`` / ``NonFiniteReport`` / ``NonFiniteError`` / ``nonfinite_state``
  (``nonfinite``): where a NaN/Inf first appeared, and checkpoint safety.
* ``Rollback`` (``rollback``): settings of the rollback policy (last good state, lower lr, go on).
* ``JsonlWriter`` / ``read_jsonl`` / ``TensorBoardLogger`` (``records``): outputs.
* ``gradient_table`` / ``average_groups`` (``table``): text for the CLI.
* ``run_gradient_check`` (``check``): N monitored training steps -> verdict, for the CLI;
  ``check_model`` (``model_check``): the same for a zoo or torchvision model named, on a data set named.
* ``plot_gradient_flow`` / ``plot_heatmap`` / ``plot_loss`` (``plots``).

Every name is imported on first use, so importing the package imports neither torch nor matplotlib.
"""

from ..lazy import lazy_exports

# Each name's module, imported on first use: the report draws plots without importing torch.
_MODULES = {
    ".check": ["run_gradient_check"],
    ".choices": ["POLICIES"],
    ".groups": ["GROUPINGS", "LayerGroup", "build_groups", "parse_grouping"],
    ".model_check": ["check_model"],
    ".monitor": ["GradientMonitor"],
    ".nonfinite": ["NonFiniteError", "NonFiniteReport", "locate_nonfinite", "nonfinite_state", "tensor_stats"],
    ".records": ["JsonlWriter", "TensorBoardLogger", "read_jsonl"],
    ".rollback": ["Rollback"],
    ".table": ["average_groups", "gradient_table"],
    ".verdicts": ["KINDS", "Thresholds", "Verdict"],
    ".plots": ["plot_gradient_flow", "plot_heatmap", "plot_loss"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
