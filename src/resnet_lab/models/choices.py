"""The values of the architectural switches, without torch: the CLI offers them as choices
before any model (or torch) is imported."""

SHORTCUTS = ("A", "B", "C", "none")
NORMS = ("batch", "group", "none")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
INITS = ("he", "xavier", "normal", "torch")
STEMS = ("imagenet", "cifar")
FAMILIES = ("imagenet", "cifar", "preact")  # ModelSpec.family
# create_model's keywords besides the classifier's size and input channels (the data sets those):
# the switches a command line, a sweep or a notebook may set.
MODEL_OPTIONS = ("shortcut", "norm", "activation", "init", "zero_init_residual", "checkpointing")
MIN_IMAGE_SIZE = 8  # the smallest input side: the CIFAR nets halve it twice
# A bound against typos (--image-size 22400): in-memory data is resized whole, up front (1024 px is 3 MB an image).
MAX_IMAGE_SIZE = 1024
# Far past any real use; beyond them torch's shape arithmetic overflows (a typo's 10**20: a traceback).
MAX_CLASSES = 10_000_000
MAX_IN_CHANNELS = 100_000
