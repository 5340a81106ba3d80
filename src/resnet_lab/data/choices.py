"""The values of the augmentation switches and the data set specs, without torch: ``TrainConfig`` and the
CLI offer them as choices (and list them in help texts) before the loader (or torch) is imported."""

# DeviceLoader(flip=): drawn afresh each epoch, every other epoch, or never (crops alone: digits, text, maps)
FLIP_MODES = ("random", "alternate", "none")
PAD_MODES = ("zeros", "reflect")  # DeviceLoader(pad_mode=): what the random crop's border holds

# The data set specs ``load_data`` takes, as help texts and messages list them: held in memory whole,
# then with an image folder (read from disk as it trains).
IN_MEMORY_DATA_SETS = "digits, cifar10, cifar100, npz:PATH"
DATA_SETS = f"{IN_MEMORY_DATA_SETS}, folder:PATH"
# The same with what a file or folder must hold: what a spec that is refused is told.
IN_MEMORY_SPECS = f"{IN_MEMORY_DATA_SETS} (arrays x_train, y_train, x_test, y_test)"
VALID_SPECS = f"{IN_MEMORY_SPECS}, folder:PATH (PATH/train/<class>/*, PATH/val/<class>/*)"
