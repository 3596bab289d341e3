"""The training progress bar, wherever training runs: a terminal, a Jupyter notebook, a pipe or CI.

tqdm's own choice (``tqdm.auto``) shows the notebook widget only where ipywidgets is installed, and otherwise warns
and falls back to a bar on stderr; and ``disable=None``, tqdm's "only on a terminal", hides the bar in every
notebook, whose kernel's stderr is never a terminal. Here a notebook gets the widget where ipywidgets can be
imported and a plain text bar on stdout (the cell's output) otherwise, without a warning.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.std import tqdm

from .callbacks import Callback, Run


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter kernel (Jupyter, JupyterLab, VS Code's and Colab's notebooks).

    A kernel's shell is IPython's ``ZMQInteractiveShell`` or a subclass of it; a terminal IPython's is a
    ``TerminalInteractiveShell``, whose stderr is a terminal. IPython is looked up, not imported: a kernel has
    always imported it, and a plain script should not pay for importing it.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty())


def progress_bar(
    total: int, initial: int = 0, desc: str | None = None, enabled: bool | None = None, **kwargs: Any
) -> tqdm[Any]:
    """A tqdm bar counting ``initial`` of ``total`` steps, fit for where it is shown.

    Args:
        total: the number of steps at the end of the bar.
        initial: the steps already done (a resumed run's epochs).
        desc: the text before the bar.
        enabled: True shows the bar, False hides it (a disabled tqdm, which callers update as any other), and
            None shows it in a terminal or a Jupyter notebook and hides it elsewhere (pipes, files, CI).
        **kwargs: passed on to tqdm (``unit``, ``leave``, ``mininterval``, ...).

    Returns:
        In a Jupyter kernel, ``tqdm.notebook.tqdm`` (a widget) where ipywidgets can be imported, else a text bar on
        stdout, which the notebook shows as the cell's output; elsewhere a text bar on stderr.
    """
    notebook = in_jupyter_kernel()
    show = (notebook or _stderr_is_terminal()) if enabled is None else enabled
    if not isinstance(show, bool):
        raise TypeError(f"enabled must be True, False or None, got {enabled!r}")
    if notebook and show:
        try:
            import ipywidgets  # noqa: F401  (tqdm.notebook needs it, and says so only with a warning)
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(total=total, initial=initial, desc=desc, **kwargs)
        except ImportError:  # no ipywidgets, or one too old for tqdm's widget
            return tqdm(total=total, initial=initial, desc=desc, file=sys.stdout, **kwargs)
    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, disable=not show, **kwargs)


class ProgressBar(Callback):
    """The epochs as a :func:`progress_bar`, with the lowest cost of the running models; ``enabled=None`` shows it in
    a terminal or a notebook."""

    between_chunks = True

    def __init__(self, max_epochs: int, enabled: bool | None) -> None:
        self.max_epochs, self.enabled = max_epochs, enabled
        self.bar: tqdm[Any] | None = None

    def on_fit_start(self, run: Run) -> None:
        self.bar = progress_bar(self.max_epochs, initial=run.epoch, desc="train", enabled=self.enabled, unit="epoch")
        if self.bar.disable:  # nothing to show: not called after each epoch
            self.between_chunks, self.every = False, None

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
