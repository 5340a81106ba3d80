"""``run_degradation``'s defaults, without torch: the CLI offers them before anything is imported."""

DEPTHS = (20, 56)  # CIFAR depths, 6n+2: the paper's Fig. 1 pair
SEEDS = (0,)
RECIPE = "default"
KINDS = ("plain", "resnet")  # each depth's two networks, in the order they train and are listed
