"""Data sets and input pipelines.

- `load_data(spec)`: digits, cifar10, cifar100, npz:PATH, folder:PATH.
- `DeviceLoader`: deterministic, shardable, augmented batches built on the training device.
- `make_folder_loaders`: DataLoaders (PIL decoding in workers) for image folders.
- `preprocess_images`: image files -> normalised batch, for prediction.
- `resize_dataset`, `resize_images`: an in-memory data set or a batch at another size.
"""

from resnet_lab.data.cache import default_data_dir
from resnet_lab.data.dataset import InMemoryDataset, channel_stats, stratified_holdout
from resnet_lab.data.device_loader import DeviceLoader
from resnet_lab.data.folder import FolderDataset, make_folder_loaders
from resnet_lab.data.preprocess import preprocess_images
from resnet_lab.data.resize import resize_dataset, resize_images
from resnet_lab.data.sources import VALID_SPECS, load_data

__all__ = [
    "DeviceLoader",
    "FolderDataset",
    "InMemoryDataset",
    "VALID_SPECS",
    "channel_stats",
    "default_data_dir",
    "load_data",
    "make_folder_loaders",
    "preprocess_images",
    "resize_dataset",
    "resize_images",
    "stratified_holdout",
]
