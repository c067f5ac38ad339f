"""A job that reports what a work horse inherited from its worker, for tests of the preload."""

from __future__ import annotations

import sys


def horse_state(modules: list[str]) -> dict[str, object]:
    """Which of `modules` were already imported when the job started, and torch's thread count."""
    preloaded = [name for name in modules if name in sys.modules]
    import torch

    return {"preloaded": preloaded, "torch_threads": torch.get_num_threads()}
