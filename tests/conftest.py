"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def shared_data_dir() -> Path:
    """The checkout's shared real data (<repo root>/../shared/data), never copied into the repo.

    Missing data fails the test in CI (CI=true) so it cannot silently pass, and skips it elsewhere.
    """
    path = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    if not path.is_dir():
        message = f"shared data folder {path} is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def interrupted_run(monkeypatch):
    """``interrupted_run(out, **settings)``: resnet8 on digits (16 px, batch 512: 2 steps an epoch,
    2 epochs) stopped by SIGTERM at the start of its second epoch, as a pre-empted job is: its
    checkpoint at step 3 (``best.pt`` at step 2); returns ``out``. ``stop_at=1``: during the last
    step of the first epoch, so the checkpoint is at step 2, that epoch's steps all taken but not
    yet evaluated."""
    import signal

    from resnet_lab.training import TrainingInterrupted, resolve_config, train
    from resnet_lab.training.eager_step import EagerStep

    def run(out: Path, stop_at: int = 2, **settings) -> Path:
        original = EagerStep.__call__

        def interrupt(self, x, y, step):
            if step == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self, x, y, step)

        config = {**dict(model="resnet8", data="digits", image_size=16, batch_size=512, epochs=2, progress=False,
                         tensorboard=False, out=str(out)), **settings}
        with monkeypatch.context() as patch:
            patch.setattr(EagerStep, "__call__", interrupt)
            with pytest.raises(TrainingInterrupted):
                train(resolve_config("default", **config), log=lambda _: None)
        return out

    return run

