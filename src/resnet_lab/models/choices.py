"""The values of the architectural switches, without torch: the CLI offers them as choices
before any model (or torch) is imported."""

SHORTCUTS = ("A", "B", "C", "none")
NORMS = ("batch", "group", "none")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
INITS = ("he", "xavier", "normal", "torch")
STEMS = ("imagenet", "cifar")
FAMILIES = ("imagenet", "cifar", "preact")  # ModelSpec.family
MIN_IMAGE_SIZE = 8  # the smallest input side: the CIFAR nets halve it twice
