"""Every Action.Execute verb, dialog id and input id the Teams cards use, in one place.

A verb travels in `Action.Execute.verb` (adaptiveCard/action invokes) or in the `verb` field of an
`Action.Submit`'s data (task/fetch and task/submit invokes, which is where the SDK's task-module
routes look for it).
"""

from __future__ import annotations

from enum import StrEnum


class Verb(StrEnum):
    OPEN_FORM = "fmbot.openForm"  # task/fetch: open the evaluate or fine-tune dialog
    FORM_DATA = "fmbot.form.data"  # task/submit of step 1: model, task and data
    FORM_MAPPING = "fmbot.form.mapping"  # task/submit of step 2: column mapping
    FORM_COMPUTE = "fmbot.form.compute"  # task/submit of step 3: compute and settings
    FORM_SKIP = "fmbot.form.skipBadRows"  # task/submit: "Skip N rows and continue" on the mapping step
    FORM_RESUME = "fmbot.form.resume"  # task/submit: the step that was still being checked, once ready
    DEPLOY = "fmbot.deploy"  # task/submit of the deploy dialog
    IMPORT = "fmbot.import"  # task/submit of the import dialog
    CANCEL_JOB = "fmbot.job.cancel"
    APPROVE_JOB = "fmbot.job.approve"
    REJECT_JOB = "fmbot.job.reject"
    JOB_EVALUATE = "fmbot.job.evaluate"
    JOB_REGISTER = "fmbot.job.register"
    JOB_PREDICTIONS = "fmbot.job.predictions"  # an evaluation's scored rows, as a file (personal chats)
    COMPARE_RERUN = "fmbot.compare.rerun"  # the same comparison again, in a new card
    COMPARE_SORT = "fmbot.compare.sort"  # the ranked reply again, sorted by another metric, for the clicker
    COMPARE_BASE = "fmbot.compare.base"  # a finished fine-tune against its base, on its own test rows
    COMPARE_PICKED = "fmbot.compare.picked"  # the models ticked on a search page: the compare card
    KEEP_ENDPOINT = "fmbot.endpoint.keep"  # the end-of-life warning's Keep N h more
    DELETE_ENDPOINT = "fmbot.endpoint.delete"  # the end-of-life warning's and the idle notice's Delete
    DATA_REGISTER = "fmbot.data.register"  # a file shared in the chat, kept as a registered dataset
    SHOW_KEY = "fmbot.endpoint.showKey"  # also the refresh action of the deployed card


class Input(StrEnum):
    MODEL = "model"
    TASK = "task"
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"
    VALIDATION_SPLIT = "validation_split"
    TEST_SPLIT = "test_split"
    DATASET = "dataset"  # a registered dataset: data:NAME:VERSION
    MAPPING = "map"  # one input per task key: map.<key>
    COMPUTE = "compute"
    INSTANCES = "instances"
    EPOCHS = "epochs"
    LEARNING_RATE = "learning_rate"
    BATCH_SIZE = "batch_size"
    DEPLOY_KIND = "deploy_kind"
    ENDPOINT = "endpoint"
    CONTENT_FILTER = "content_filter"
    MODEL_ID = "model_id"
    LICENSE = "license"
    TTL = "ttl"
    SORT_BY = "sort_by"
    COMPARE_MODELS = "compare_models"  # the search page's ticked models (Teams joins them with commas)


NOT_USED = "__none__"
