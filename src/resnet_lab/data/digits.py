"""The scikit-learn handwritten digits: real images that are bundled, so they need no network."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from resnet_lab.data.dataset import InMemoryDataset

IMAGE_SIZE = 32


def load_digits_dataset() -> InMemoryDataset:
    """1,797 8x8 digits (values 0..16) as uint8 32x32 single-channel images.

    The train/test split is fixed (stratified 80/20, random_state=0) so results are comparable
    across runs. Horizontal flips would turn digits into other shapes, so `hflip` is False.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    # Upsample to the CIFAR resolution so every CIFAR-sized architecture applies unchanged.
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    images = images.round().clamp_(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=bunch.target, random_state=0
    )
    train_idx, test_idx = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
    return InMemoryDataset(
        name="digits",
        x_train=images[train_idx].contiguous(),
        y_train=labels[train_idx],
        x_test=images[test_idx].contiguous(),
        y_test=labels[test_idx],
        classes=[str(i) for i in range(10)],
        hflip=False,
    )
