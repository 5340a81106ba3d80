"""What ``compare_models`` can be asked for and its defaults per device, without torch: the CLI
offers the precisions as choices before anything is measured."""

PRECISIONS = ("fp32", "bf16")

# Per-device defaults: a CPU run of resnet101 vs resnet152 at 224x224 takes one to two minutes on
# two cores; a GPU needs bigger batches and more rounds for stable medians.
DEFAULTS = {
    "cpu": {"batch_size": 8, "warmup": 1, "repeats": 3, "min_time_s": 0.1},
    "cuda": {"batch_size": 64, "warmup": 3, "repeats": 10, "min_time_s": 0.25},
}
# quick=True: small enough for resnet101 vs resnet152 in well under 30 s on two CPU cores.
QUICK = {"batch_size": 4, "image_size": 64, "warmup": 1, "repeats": 5, "min_time_s": 0.05}
