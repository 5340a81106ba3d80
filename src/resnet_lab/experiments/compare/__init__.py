"""Models measured side by side on this machine, and which to choose for which budget.

- ``run``: ``compare_models`` measures the models (``runner``: one model and its timed calls) and
  returns data;
- ``reference``: published accuracy (torchvision's ImageNet top-1, the papers' CIFAR-10);
- ``findings``: ``verdict``, the sentences on which model to pick, one function per sentence family;
- ``table``: the terminal table (``compare_text``);
- ``report``: ``write_compare_outputs`` writes compare.json, the chart and report.html and returns
  their paths (``add_compare_section``);
- ``plot``: the chart (imports matplotlib when drawing);
- ``settings``: the precisions and per-device defaults (no torch: the CLI offers them as choices).

Timing and memory helpers (``time_call``, ``calls_for``, ``saved_tensor_bytes``) live in ``resnet_lab.measure``.
"""

from ...lazy import lazy_exports

_MODULES = {
    ".findings": ["verdict"],
    ".reference": ["PAPER_CIFAR10", "published_accuracy", "reference_cifar10", "reference_top1"],
    ".report": ["add_compare_section", "write_compare_outputs"],
    ".run": ["compare_models"],
    ".settings": ["PRECISIONS"],
    ".table": ["compare_text"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
