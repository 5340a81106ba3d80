"""``python -m resnet_lab.training.sweep``: a sweep's worker process (see ``worker.py``)."""

import sys

from .worker import main

sys.exit(main(sys.argv[1:]))
