"""Library warnings (transformers' load reports, torch's pin_memory notice) stay out of the terminal
at the default level and are in the log at debug level. Run in a fresh process, as the CLI runs,
since pytest replaces the warnings machinery inside its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

NOISY_PROGRAM = """
import logging, warnings
from bot.observability import configure_logging
from bot.settings import Settings
from platforms.local.library_logs import route_library_logs

configure_logging(Settings())
route_library_logs()
from transformers.utils import logging as hf_logging
hf_logging.get_logger("transformers.modeling_utils").warning("Some weights of TinyBert were not initialized")
warnings.warn("'pin_memory' argument is set as true but no accelerator is found", UserWarning)
logging.getLogger("fmbot.cli").info("what the user asked for")
"""


def stderr_at(level: str) -> str:
    env = {**os.environ, "FMBOT_LOG_LEVEL": level}
    done = subprocess.run([sys.executable, "-c", NOISY_PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_library_warnings_do_not_reach_the_terminal_at_info():
    text = stderr_at("INFO")
    assert "what the user asked for" in text
    assert "Some weights" not in text and "pin_memory" not in text


@pytest.mark.parametrize("noise", ["Some weights of TinyBert", "pin_memory"])
def test_library_warnings_are_in_the_log_at_debug(noise):
    lines = [line for line in stderr_at("DEBUG").splitlines() if noise in line]
    assert len(lines) == 1 and '"level": "DEBUG"' in lines[0], lines
