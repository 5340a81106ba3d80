"""Resizing images: a batch (``resize_images``) or a whole in-memory data set (``resize_dataset``).

Both resample bilinearly with antialiasing (``align_corners=False``), so images shrunk here look
the same whether a data set was resized once up front or each batch on the fly.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F

from ..errors import UserError
from ..models.choices import MIN_IMAGE_SIZE
from .dataset import InMemoryDataset


def resize_images(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``x`` (N, C, H, W) resized to ``size`` x ``size`` (or ``size`` = (height, width)); uint8 images stay
    uint8 (rounded, clamped to 0-255, contiguous), floating-point batches stay floating point."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if x.dtype == torch.uint8:
        out = F.interpolate(x.float(), size=shape, mode="bilinear", align_corners=False, antialias=True)
        return out.round().clamp_(0, 255).to(torch.uint8).contiguous()
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=True)


def resize_dataset(ds, size: int | tuple[int, int]):
    """A copy of an in-memory data set with every image resized (bilinear) to ``size`` x ``size``, or to
    ``size`` = (height, width) (a model trained on non-square npz images); anything else (an image folder:
    its loader resizes) or a data set already that size is returned as is."""
    # Both sides: npz images may be H x W, and ``image_size`` is the height alone.
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if not isinstance(ds, InMemoryDataset) or tuple(ds.x_train.shape[2:]) == shape:
        return ds
    if min(shape) < MIN_IMAGE_SIZE:
        raise UserError(f"--image-size must be at least {MIN_IMAGE_SIZE}, got {min(shape)}")
    return dataclasses.replace(ds, name=f"{ds.name} at {shape[0]}x{shape[1]}", x_train=resize_images(ds.x_train, shape),
                               x_test=resize_images(ds.x_test, shape), mean=None, std=None)


__all__ = ["resize_dataset", "resize_images"]
