"""Training: one config object, recipes, the loop, checkpoints.

Names are imported on first use (``lazy.py``): the CLI reads ``config`` without importing torch.
"""

from ..lazy import lazy_exports

_MODULES = {
    ".checkpoint": ["export_safetensors", "load_checkpoint", "save_checkpoint"],
    ".config": ["RECIPES", "RESUMABLE", "TrainConfig", "resolve_config"],
    ".run_files": ["load_run_config"],
    ".schedules": ["lr_factor"],
    ".trainer": ["TrainResult", "TrainingInterrupted", "evaluate", "train"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
