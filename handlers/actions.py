"""What the access policy can allow: one action per guarded kind of work.

Its own module so that the command registry (which names the action each command needs) and the
policy (which decides) both import it, and neither imports the other.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    SEARCH = "search"
    TRY = "try"
    EVALUATE = "evaluate"
    FINETUNE = "finetune"
    DEPLOY = "deploy"
    IMPORT = "import"
    CANCEL_OTHERS = "cancel_others"
    APPROVE = "approve"
