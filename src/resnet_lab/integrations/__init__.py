"""Gradient diagnostics inside other trainers: thin adapters over ``GradientMonitor``.

* ``resnet_lab.integrations.lightning.GradientMonitorCallback``: a PyTorch Lightning callback
  (``pip install 'resnet-lab[lightning]'``).
* ``resnet_lab.integrations.huggingface.GradientMonitorCallback``: a Hugging Face
  ``transformers`` ``TrainerCallback`` (``pip install 'resnet-lab[huggingface]'``).

In a plain loop (``accelerate`` included) use ``GradientMonitor`` directly: it needs no adapter.
This package imports neither library: each adapter module imports its own when it is imported.
"""
