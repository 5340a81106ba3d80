"""The values of the augmentation switches, without torch: ``TrainConfig`` and the CLI offer them as
choices before the loader (or torch) is imported."""

FLIP_MODES = ("random", "alternate")  # DeviceLoader(flip=): drawn afresh each epoch, or every other epoch
PAD_MODES = ("zeros", "reflect")  # DeviceLoader(pad_mode=): what the random crop's border holds
