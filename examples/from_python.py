from resnet_lab.experiments.degradation import degradation_text, run_degradation, write_degradation_outputs
from resnet_lab.training import resolve_config, train

# One training run: `resnet-lab train`'s options are the fields of one config object.
config = resolve_config("default", model="resnet8", data="digits", image_size=16, epochs=3,
                        out="runs/py-resnet8", progress=False, tensorboard=False)
result = train(config, log=lambda line: None)      # the run directory holds what the command writes
print(f"resnet8: test accuracy {result.final['test_acc']:.4f} after {result.steps} steps in {result.run_dir}")

# An experiment returns data; the command's table and report are drawn from that data.
results = run_degradation([8, 14], data="digits", epochs=2, image_size=16, log=None)
print(degradation_text(results))
print("report:", write_degradation_outputs(results, "runs/py-degradation")["report"])
