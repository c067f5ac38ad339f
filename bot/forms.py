"""What the fine-tune and evaluate forms collect step by step, the same on every chat surface.

Each surface keeps these answers in its own store (Slack: the view's private metadata, Teams: Redis
bound to the dialog's owner) with what that surface needs besides.
"""

from __future__ import annotations

from pydantic import BaseModel

from platforms.base import DataRef
from platforms.datasets import SplitPlan

FORM_TTL_SECONDS = 24 * 3600  # an unfinished form is forgotten after a day


class FormAnswers(BaseModel):
    model: str | None = None
    task: str | None = None
    train: DataRef | None = None
    validation: DataRef | None = None
    test: DataRef | None = None
    validation_split: float = 10.0
    test_split: float = 10.0
    columns: list[str] = []
    mapping: dict[str, str] = {}

    def split(self, *, own_validation: bool, own_test: bool) -> SplitPlan:
        """The shares of the training data set aside, in percent on the form; none for a part the
        user gave a file of its own for."""
        return SplitPlan(validation=0 if own_validation else self.validation_split / 100,
                         test=0 if own_test else self.test_split / 100)
