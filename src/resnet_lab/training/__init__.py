"""Training: one config object, recipes, the loop, checkpoints."""

from .checkpoint import export_safetensors, load_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, resolve_config
from .schedules import lr_factor
from .trainer import TrainingInterrupted, TrainResult, evaluate, train

__all__ = ["RECIPES", "TrainConfig", "TrainResult", "TrainingInterrupted", "evaluate", "export_safetensors",
           "load_checkpoint", "lr_factor", "resolve_config", "save_checkpoint", "train"]
