"""StopOnSignal: a SIGINT during a Trainer run ends it at the next batch (see core.training.signals)."""

from __future__ import annotations

import signal
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from genre_torch.core.training import signals


class StopOnSignal(Callback):
    """Ends a Trainer run at the first batch after a SIGINT, where no library is halfway through its own work."""

    def setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        """From here the handler records a SIGINT and this raises it (signals.defer); a signal that came before the run
        (one whose exception Python dropped) stops it before its first batch."""
        signals.defer(True)
        signals.check()

    def teardown(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        """Back to raising at once."""
        signals.defer(False)

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        """A run that failed is not torn down through `teardown`."""
        signals.defer(False)

    def on_batch(self, *args: Any) -> None:
        """Any batch hook: stop if a SIGINT came."""
        if signals.has_received(signal.SIGINT):
            raise signals.Interrupted(signal.SIGINT)

    on_train_batch_start = on_validation_batch_start = on_test_batch_start = on_predict_batch_start = on_batch
