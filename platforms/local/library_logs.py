"""transformers writes its load reports ("Some weights ... were not initialized") to stderr through a
handler of its own; sent through the `logging` tree instead, they reach fmbot's one handler, which
keeps them at debug level. Called wherever the local platform is about to load a model."""

from __future__ import annotations

import functools
import logging


@functools.cache
def route_library_logs() -> None:
    logging.captureWarnings(True)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
