"""The progress bar of training: tqdm, on rank 0."""

from __future__ import annotations

from tqdm.auto import tqdm

from .callbacks import Callback, Run


class ProgressBar(Callback):
    """A tqdm bar of the epochs, with the lowest cost of the running models; ``enabled=None`` shows it only when the
    output is a terminal."""

    def __init__(self, max_epochs: int, enabled: bool | None) -> None:
        self.max_epochs, self.enabled = max_epochs, enabled
        self.bar: tqdm | None = None

    def on_fit_start(self, run: Run) -> None:
        disable = None if self.enabled is None else not self.enabled
        self.bar = tqdm(total=self.max_epochs, initial=run.epoch, desc="train", unit="epoch", disable=disable)

    def on_epoch_end(self, run: Run) -> None:
        if self.bar is None or self.bar.disable:
            return
        costs = [h.costs[-1] for h, on in zip(run.histories, run.running) if on and h.costs]
        if costs:
            self.bar.set_postfix(cost=f"{min(costs):.6f}", refresh=False)
        self.bar.update(run.epoch - self.bar.n)

    def on_fit_end(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.close()
