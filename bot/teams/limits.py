"""Teams' published limits that fmbot's cards are built to stay inside.

Teams refuses a bot message over its size limit with 413 `MessageSizeTooBig`; the limit counts
the whole payload encoded as UTF-16, and not base64 images (Microsoft Learn, "Format your bot
messages"). The page has said 40 KB and, later, 100 KB with 80 KB advised; fmbot keeps to the
smaller figure, so a card that fits here fits everywhere Teams runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

MESSAGE_BYTES = 40 * 1024
CARD_VERSION = "1.5"  # the newest Adaptive Card schema Teams renders on every client
TEXT_CHARS = 2000  # longest text one TextBlock gets; a metrics table or an error stays readable
# How long a dialog step may work before it answers: Teams shows an error when an invoke goes
# unanswered for about 15 seconds, so a step still reading a big file answers "checking…" well before.
INVOKE_BUDGET_SECONDS = 8.0
CHOICES = 100  # choices in one Input.ChoiceSet before the list is cut (and says so)
MAX_ACTIONS = 6  # buttons a Teams card shows (its host config's maxActions, as render_job_card.py draws them)
_BASE64_IMAGE = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


def clip(text: str, limit: int = TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_size(payload: Any) -> int:
    """Bytes of the payload as Teams counts them: UTF-16, base64 images left out."""
    text = _BASE64_IMAGE.sub("", json.dumps(payload, ensure_ascii=False))
    return len(text.encode("utf-16-le"))
