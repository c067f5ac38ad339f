"""Every Slack callback id, block id and action id fmbot uses, in one place."""

from enum import StrEnum


class CallbackId(StrEnum):
    FORM_DATA = "fmbot.form.data"
    FORM_CHECKING = "fmbot.form.checking"
    FORM_MAPPING = "fmbot.form.mapping"
    FORM_COMPUTE = "fmbot.form.compute"


class BlockId(StrEnum):
    MODEL = "model"
    TASK = "task"
    TRAIN_FILE = "train_file"
    TRAIN_SOURCE = "train_source"
    VALIDATION_FILE = "validation_file"
    VALIDATION_SPLIT = "validation_split"
    TEST_FILE = "test_file"
    TEST_SOURCE = "test_source"
    TEST_SPLIT = "test_split"
    MAPPING = "map"
    COMPUTE = "compute"
    INSTANCES = "instances"
    EPOCHS = "epochs"
    LEARNING_RATE = "learning_rate"
    BATCH_SIZE = "batch_size"
    FORM_ERROR = "form_error"


class ActionId(StrEnum):
    MODEL = "model_select"
    TASK = "task_select"
    FILE = "file_input"
    SOURCE = "source_input"
    SPLIT = "split_input"
    COLUMN = "column_select"
    COMPUTE = "compute_select"
    NUMBER = "number_input"
    CARD_TRY = "card_try"
    CARD_EVALUATE = "card_evaluate"
    CARD_FINETUNE = "card_finetune"
    CARD_DEPLOY = "card_deploy"
    PAGE = "search_page"
    CANCEL_JOB = "job_cancel"
    JOB_EVALUATE = "job_evaluate"
    JOB_REGISTER = "job_register"
    JOB_DEPLOY = "job_deploy"
    DELETE_ENDPOINT = "endpoint_delete"
