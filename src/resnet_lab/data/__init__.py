"""Data sets and input pipelines.

- `load_data(spec)`: digits, cifar10, cifar100, npz:PATH, folder:PATH.
- `DeviceLoader`: deterministic, shardable, augmented batches built on the training device.
- `make_folder_loaders`: DataLoaders (PIL decoding in workers) for image folders.
- `preprocess_images`: image files -> normalised batch, for prediction.
- `resize_dataset`, `resize_images`: an in-memory data set or a batch at another size.
"""

from ..lazy import lazy_exports

_MODULES = {
    ".cache": ["default_data_dir"],
    ".choices": ["IN_MEMORY_SPECS", "VALID_SPECS"],
    ".dataset": ["InMemoryDataset", "channel_stats", "limit_dataset", "stratified_holdout"],
    ".device_loader": ["DeviceLoader"],
    ".folder": ["FolderDataset", "make_folder_loaders"],
    ".preprocess": ["preprocess_images"],
    ".resize": ["resize_dataset", "resize_images"],
    ".sources": ["load_data", "prepare_data"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
