"""The values of the gradient check's and the NaN/Inf policy's switches, without torch: ``TrainConfig``
and the CLI offer them as choices before the monitor (or torch) is imported."""

OPTIMIZERS = ("sgd", "adam", "adamw")  # run_gradient_check(optimizer=); the trainer builds the same ones
POLICIES = ("warn", "skip", "stop", "rollback")  # GradientMonitor(nonfinite=): what a NaN/Inf step does
