"""The values of the gradient check's and the NaN/Inf policy's switches, without torch: ``TrainConfig``
and the CLI offer them as choices before the monitor (or torch) is imported."""

OPTIMIZERS = ("sgd", "adam", "adamw")  # run_gradient_check(optimizer=); the trainer builds the same ones
POLICIES = ("warn", "skip", "stop", "rollback")  # GradientMonitor(nonfinite=): what a NaN/Inf step does
# The largest learning rate, weight decay or clip value taken. The optimisers apply them as scalars to the
# float32 weights, and past float32's 3.4e38 torch refuses the step in a traceback (Adam first divides the lr
# by its bias correction: up to 10x; batch scaling multiplies it). Far past any real use: 1e6 still diverges.
MAX_OPTIMIZER_SCALAR = 1e30
