"""Experiments: measurements that return data (plots and printing live elsewhere)."""

from .compare import compare_models, reference_top1, saved_tensor_bytes

__all__ = ["compare_models", "reference_top1", "saved_tensor_bytes"]
