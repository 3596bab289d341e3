"""Whether code runs on real tensors, in plain eager mode.

Under ``torch.compile``, ``torch.export``, ``torch.jit.trace`` and the ``torch.func`` transforms (``vmap``, ``grad``,
``jacrev``, ``jvp``, ...), tensors are symbolic or wrapped. Python must not read their values (``.item()``, NaN
scans), which would fail or bake a constant into a graph, nor hand them to other threads, which do not share the
calling thread's transform state.
"""

from __future__ import annotations

import torch


def plain_eager() -> bool:
    # maybe_current_level() is the innermost active torch.func transform, None outside them; PyTorch exposes no
    # public equivalent
    return not (
        torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.jit.is_tracing()
        or torch._C._functorch.maybe_current_level() is not None
    )
