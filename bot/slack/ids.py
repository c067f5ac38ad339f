"""Every Slack callback id, block id and action id fmbot uses, in one place."""

from enum import StrEnum


class CallbackId(StrEnum):
    FINETUNE = "fmbot.finetune"


class BlockId(StrEnum):
    MODEL = "model"
    TASK = "task"
    TRAIN_FILE = "train_file"
    MAPPING = "mapping"
    VALIDATION_SPLIT = "validation_split"
    TEST_SPLIT = "test_split"
    EPOCHS = "epochs"


class ActionId(StrEnum):
    MODEL = "model_select"
    TASK = "task_select"
    TRAIN_FILE = "train_file_input"
    MAPPING = "mapping_input"
    VALIDATION_SPLIT = "validation_split_input"
    TEST_SPLIT = "test_split_input"
    EPOCHS = "epochs_input"
    CANCEL_JOB = "job_cancel"
