"""Self-contained HTML reports: one .html file per run, readable offline on a laptop or a phone.

>>> from resnet_lab.report import Report, run_metadata
>>> report = Report("ResNet-20 vs plain-20", subtitle="CIFAR-10, 3 seeds")
>>> report.set_meta(settings={"epochs": 2}, data="cifar10 (50,000 train)", seeds=[0, 1, 2],
...                 run_time_s=12.5, **run_metadata("cpu"))
>>> report.add_findings(["resnet20 reaches 91.2% test accuracy; plain20 reaches 90.1%"])
>>> report.add_table([{"model": "resnet20", "accuracy": 0.912}])
>>> report.write("runs/report.html")  # doctest: +SKIP
"""

from .html import Report
from .meta import run_metadata

__all__ = ["Report", "run_metadata"]
