"""Bad input, table-driven: every case gets a specific message that names what is wrong and what to
do, through the CLI (exit status 2, message on stderr, no traceback) or Slack, and leaves nothing
half-created: no ledger record, no queued job, no endpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from bot.cli import main
from bot.settings import Settings
from platforms.tasks import Task
from tests.helpers import DATA, settings_env
from tests.slack_standin import SlackSender, SlackStandIn
from tests.bot_server import BotServer
from tests.tiny_models import add_tiny_bert
from workers.ledger import JobRecord, Ledger, new_job_id
from workers.queues import job_queue

LIMIT_MB = 25
SST2 = DATA / "sst2_small_validation.jsonl"


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    expected: str


def text_rows(n: int = 6, **extra) -> str:
    labels = ["positive", "negative"]
    return "".join(json.dumps({"text": f"sentence {i}", "label": labels[i % 2], **extra}) + "\n" for i in range(n))


FILES: dict[str, bytes | Callable[[], bytes]] = {
    "empty.jsonl": b"",
    "latin1.csv": "text,label\ncaf\u00e9 cr\u00e8me,positive\nbon,negative\n".encode("latin-1"),
    "broken.jsonl": (text_rows(3) + '{"text": "oops", "label": \n' + text_rows(2)).encode(),
    "array.jsonl": json.dumps([{"text": "a", "label": "positive"}, {"text": "b", "label": "negative"}] * 3).encode(),
    "object.json": b'{"text": "a", "label": "positive"}\n{"text": ',
    "ragged.csv": b"text,label\ngood,positive\nbad,negative,extra\nfine,positive\n",
    "ragged.tsv": b"text\tlabel\ngood\tpositive\nbad\n",
    "header_only.csv": b"text,label\n",
    "big.jsonl": lambda: text_rows(10).encode() * (26 * 1024 * 1024 // len(text_rows(10).encode()) + 1),
    "one_line_20mb.jsonl": lambda: json.dumps({"text": "x" * (20 * 1024 * 1024), "label": "positive"}).encode(),
    "missing_label.jsonl": (text_rows(4) + json.dumps({"text": "no label here"}) + "\n").encode(),
    "one_class.jsonl": "".join(json.dumps({"text": f"s{i}", "label": "positive"}) + "\n" for i in range(8)).encode(),
    "nan_text.csv": b"text,label\ngood,positive\nNaN,negative\nok,positive\n,negative\n",
    "empty_text.jsonl": (text_rows(4) + json.dumps({"text": "", "label": "negative"}) + "\n").encode(),
    "null_text.jsonl": (text_rows(4) + json.dumps({"text": None, "label": "negative"}) + "\n").encode(),
    "tags_mismatch.jsonl": (json.dumps({"tokens": ["EU", "rejects", "it"], "tags": ["B-ORG", "O", "O"]}) + "\n"
                            + json.dumps({"tokens": ["Peter", "Blackburn"], "tags": ["B-PER"]}) + "\n").encode(),
    "qa_not_in_context.jsonl": (json.dumps({"question": "Who?", "context": "Ada wrote it.",
                                            "answers": {"text": ["Ada"], "answer_start": [0]}}) + "\n"
                                + json.dumps({"question": "Where?", "context": "In London.",
                                              "answers": {"text": ["Paris"], "answer_start": [3]}}) + "\n").encode(),
    "no_summary.jsonl": (json.dumps({"document": "long text", "summary": "short"}) + "\n"
                         + json.dumps({"document": "more text", "summary": ""}) + "\n").encode(),
    "translation.jsonl": (json.dumps({"en": "hello", "ro": "salut"}) + "\n" + json.dumps({"en": "bye"}) + "\n").encode(),
    "data.xlsx": b"PK\x03\x04 not really a spreadsheet",
    "dup_columns.csv": b"text,text,label\na,b,positive\nc,d,negative\n",
    "good.jsonl": text_rows(12).encode(),
}


def ft(train: str, *extra: str, task: str = "text-classification", mapping: str = "sentence1=text,label=label",
       model: str = "tiny-bert") -> list[str]:
    return ["finetune", model, "--task", task, "--train", f"{{dir}}/{train}", "--map", mapping, *extra]


def ev(test: str, *extra: str, task: str = "text-classification", mapping: str = "sentence1=text,label=label",
       model: str = "tiny-bert") -> list[str]:
    return ["evaluate", model, "--task", task, "--test", f"{{dir}}/{test}", "--map", mapping, *extra]


CASES = [
    # ---------------------------------------------------------------- files
    Case("empty file", ft("empty.jsonl"), "empty.jsonl: the file is empty. Upload a JSONL"),
    Case("empty test file", ev("empty.jsonl"), "empty.jsonl: the file is empty"),
    Case("not UTF-8", ft("latin1.csv"), "latin1.csv line 2: is not UTF-8 text (byte 0xe9 at column 4). Save the file as UTF-8"),
    Case("JSONL line not JSON", ft("broken.jsonl"), "broken.jsonl line 4: is not valid JSON"),
    Case("JSON cut short", ft("object.json"), "object.json line 2: is not valid JSON"),
    Case("CSV ragged row", ft("ragged.csv"), "ragged.csv line 3: has 3 fields but the header has 2"),
    Case("TSV ragged row", ft("ragged.tsv"), "ragged.tsv line 3: has 1 field but the header has 2"),
    Case("CSV with only a header", ft("header_only.csv"), "header_only.csv: holds no records. Add at least one row"),
    Case("file over the size limit", ft("big.jsonl"), f"big.jsonl: is 26.0 MB; the limit is {LIMIT_MB} MB. Upload a smaller"),
    Case("a single 20 MB line", ft("one_line_20mb.jsonl"), "one_line_20mb.jsonl line 1: is longer than 8 MB. Split very long"),
    Case("unsupported format", ft("data.xlsx"), "data.xlsx: cannot tell the format of this file (suffix .xlsx)"),
    Case("file that does not exist", ft("nowhere.jsonl"), "nowhere.jsonl: does not exist. Check the path"),
    Case("duplicate column names", ft("dup_columns.csv"), 'dup_columns.csv line 1: names column "text" twice'),
    # ---------------------------------------------------------------- columns and values
    Case("mapped column missing from some rows", ft("missing_label.jsonl"), 'missing_label.jsonl line 5: column "label"'),
    Case("mapped column not in the file", ft("good.jsonl", mapping="sentence1=review,label=label"),
         'good.jsonl line 1: column "review" is missing. Every row needs "review" (mapped to sentence1)'),
    Case("label column with one class", ft("one_class.jsonl"), 'one_class.jsonl: the label column has only one class ("positive")'),
    Case("NaN text in CSV", ft("nan_text.csv"), 'nan_text.csv line 3: column "text" is empty. Give every row'),
    Case("empty text", ft("empty_text.jsonl"), 'empty_text.jsonl line 5: column "text" is empty'),
    Case("null text", ft("null_text.jsonl"), 'null_text.jsonl line 5: column "text" is empty'),
    Case("tokens and tags of different lengths", ft("tags_mismatch.jsonl", task="token-classification",
                                                    mapping="tokens=tokens,tags=tags"), "tags_mismatch.jsonl line 2: has 2 tokens but 1 tags. Give exactly one tag per token"),
    Case("QA answer not in the context", ft("qa_not_in_context.jsonl", task="question-answering",
                                            mapping="question=question,context=context,answers=answers"),
         'qa_not_in_context.jsonl line 2: answer "Paris" is not in the context at offset 3'),
    Case("summarization with an empty summary", ft("no_summary.jsonl", task="summarization",
                                                   mapping="document=document,summary=summary", model="tiny-t5"),
         'no_summary.jsonl line 2: column "summary" is empty'),
    Case("translation target missing", ft("translation.jsonl", "--source-lang", "en", "--target-lang", "ro",
                                          task="translation", mapping="source=en,target=ro", model="tiny-t5"),
         'translation.jsonl line 2: column "ro"'),
    # ---------------------------------------------------------------- mapping
    Case("mapping with an unknown key", ft("good.jsonl", mapping="sentence1=text,label=label,colour=red"),
         '"colour" is not a column key of text-classification. Keys for text-classification: sentence1, label'),
    Case("mapping without the label", ft("good.jsonl", mapping="sentence1=text"),
         'no column is mapped to "label". Add label=<your column>'),
    Case("mapping that is not KEY=COLUMN", ft("good.jsonl", mapping="sentence1"), '"sentence1" is not KEY=COLUMN'),
    # ---------------------------------------------------------------- task and model
    Case("unknown task", ft("good.jsonl", task="sentiment-magic"),
         'unknown task "sentiment-magic". Use one of: text-classification'),
    Case("task the model does not support", ft("good.jsonl", task="summarization",
                                               mapping="document=text,summary=label"), "tiny-bert:1 does not support summarization. Its tasks: text-classification"),
    Case("model not in the catalog", ft("good.jsonl", model="no-such-model"),
         'model "no-such-model" is not in the catalog. See `fmbot models`'),
    Case("model version not in the catalog", ft("good.jsonl", model="tiny-bert:99"),
         'model "tiny-bert" has no version 99. Versions: 1'),
    Case("card of an unknown model", ["card", "no-such-model"], 'model "no-such-model" is not in the catalog'),
    Case("try an unknown model", ["try", "no-such-model", "hello"], 'model "no-such-model" is not in the catalog'),
    # ---------------------------------------------------------------- settings
    Case("split percentages over 100", ft("good.jsonl", "--validation-split", "60", "--test-split", "50"),
         "validation and test splits sum to 110%. Together they must stay under 100%"),
    Case("negative epochs", ft("good.jsonl", "--epochs", "-1"), "epochs: Input should be greater than or equal to 1 (you gave -1)"),
    Case("zero batch size", ft("good.jsonl", "--batch-size", "0"), "batch_size: Input should be greater than or equal to 1 (you gave 0)"),
    Case("negative learning rate", ft("good.jsonl", "--learning-rate", "-0.1"), "learning_rate: Input should be greater than 0"),
    Case("fine-tune a task that cannot be fine-tuned", ft("good.jsonl", task="fill-mask", mapping="text=text"),
         "fill-mask models cannot be fine-tuned. Fine-tune supports text-classification"),
    Case("LoRA on an encoder task", ft("good.jsonl", "--lora"),
         "LoRA applies to summarization, translation, text-generation, not text-classification"),
    Case("validation file and split both", ft("good.jsonl", "--validation", "{dir}/good.jsonl",
                                              "--validation-split", "0.2"), "--validation or --validation-split"),
    # ---------------------------------------------------------------- import
    Case("invalid Hugging Face model id", ["import", "not a/valid id!!", "--task", "fill-mask"],
         '"not a/valid id!!" is not a Hugging Face model id: use OWNER/NAME'),
    Case("import for an unknown task", ["import", "google-bert/bert-base-uncased", "--task", "dancing"],
         '"dancing" models cannot be imported. Import supports: fill-mask'),
    Case("import from a folder that is not there", ["import", "org/model", "--task", "fill-mask", "--from",
                                                    "{dir}/no-folder"], "no-folder is not a folder"),
    # ---------------------------------------------------------------- deploy
    Case("endpoint name breaking Azure's rules", ["deploy", "tiny-bert", "--endpoint", "1_bad name"],
         "is not a valid endpoint name"),
    Case("endpoint name too long", ["deploy", "tiny-bert", "--endpoint", "e" * 40], "3 to 32 characters"),
    Case("endpoint name already taken", ["deploy", "tiny-bert", "--endpoint", "taken-name"],
         'an endpoint named "taken-name" already exists'),
    Case("instance count 0", ["deploy", "tiny-bert", "--endpoint", "zero-inst", "--instances", "0"], "instances must be 1 to 8, not 0"),
    Case("instance count above the limit", ["deploy", "tiny-bert", "--endpoint", "many-inst", "--instances", "500"],
         "instances must be 1 to 8, not 500"),
    Case("deploy a model not in the catalog", ["deploy", "no-such-model", "--endpoint", "nomodel"],
         'model "no-such-model" is not in the catalog'),
    # ---------------------------------------------------------------- jobs
    Case("status of an unknown job", ["status", "ft-00000000"], 'there is no job "ft-00000000"'),
    Case("cancel of an unknown job", ["cancel", "ft-00000000"], 'there is no job "ft-00000000"'),
    Case("cancel of a finished job", ["cancel", "{finished}"],
         "{finished} has already completed. Only queued or running jobs can be canceled"),
    Case("cancel of someone else's job", ["cancel", "{others}"],
         "{others} was started by someone else (<@U0SOMEONE>), so you cannot cancel it. Ask them to cancel it"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    for name, content in FILES.items():
        (folder / name).write_bytes(content() if callable(content) else content)
    return folder


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, redis: Redis) -> Iterator[Settings]:
    from tests.tiny_models import add_tiny_t5

    texts = [json.loads(line)["input_string"] for line in SST2.open()]
    tasks = (Task.TEXT_CLASSIFICATION, Task.TOKEN_CLASSIFICATION, Task.QUESTION_ANSWERING)
    add_tiny_bert(Path(settings.fmbot_models_dir), texts, tasks=tasks)
    add_tiny_t5(Path(settings.fmbot_models_dir), texts)
    settings = settings.replace(fmbot_max_upload_mb=LIMIT_MB)
    for name in [k for k in os.environ if k.startswith(("FMBOT_", "SLACK_", "AZURE"))]:
        monkeypatch.delenv(name)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    yield settings


def jobs_to_cancel(redis: Redis) -> dict[str, str]:
    import getpass

    ledger = Ledger(redis)
    finished = ledger.create(JobRecord(id=new_job_id("finetune"), kind="finetune", model="tiny-bert:1",
                                       task="text-classification", spec={}, requester=f"cli:{getpass.getuser()}",
                                       state="completed"))
    others = ledger.create(JobRecord(id=new_job_id("finetune"), kind="finetune", model="tiny-bert:1",
                                     task="text-classification", spec={}, requester="U0SOMEONE"))
    return {"finished": finished.id, "others": others.id}


def taken_endpoint(redis: Redis) -> None:
    """An endpoint record as the local platform keeps one, so its name is taken."""
    from platforms.local.endpoints import EndpointRecord, endpoint_key, endpoints_key

    from datetime import UTC, datetime

    record = EndpointRecord(name="taken-name", model="tiny-bert:1", task="text-classification", instances=1,
                            key_hash="0" * 64, owner="U0SOMEONE", log_file="/dev/null", state_file="/dev/null",
                            created_at=datetime.now(UTC))
    redis.set(endpoint_key("taken-name"), record.model_dump_json())
    redis.sadd(endpoints_key(), "taken-name")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_answers_bad_input_with_a_specific_message(case: Case, cli_env: Settings, bad_files: Path,
                                                       redis: Redis, capsys: pytest.CaptureFixture[str]):
    ids = jobs_to_cancel(redis) if "{" in " ".join(case.argv) and "cancel" in case.argv else {}
    if "taken" in case.name:
        taken_endpoint(redis)
    argv = [a.format(dir=bad_files, **ids) for a in case.argv]
    before = {k for k in redis.keys("fmbot:job:*")}
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert case.expected.format(**ids) in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3, "one message, not a dump"
    assert {k for k in redis.keys("fmbot:job:*")} == before, "no half-created job"
    assert job_queue(redis).count == 0
    if "endpoint" in case.name or "instance" in case.name or "deploy" in case.name:
        from platforms.local.endpoints import endpoints_key

        assert {m.decode() for m in redis.smembers(endpoints_key())} <= {"taken-name"}, "no endpoint created"


def test_json_array_in_a_jsonl_file_is_accepted(cli_env: Settings, bad_files: Path, redis: Redis,
                                                capsys: pytest.CaptureFixture[str]):
    """Decided: a JSON array is read as one JSON document whatever the file is called, since many
    datasets ship that way; refusing it would only make users rename files."""
    assert main([a.format(dir=bad_files) for a in ft("array.jsonl")]) == 0, capsys.readouterr().err
    assert len(Ledger(redis).recent()) == 1 and job_queue(redis).count == 1


def test_table_is_large_enough():
    assert len(CASES) + len(SLACK_CASES) + len(QUOTA_CASES) >= 40


# -------------------------------------------------------------------- compute and quota


QUOTA_CASES = [
    ("unknown SKU on the local platform", "local", "gpu-h100", 1, 'unknown compute "gpu-h100" on the local platform'),
    ("more instances than the local platform runs", "local", "cpu", 2, "runs one instance, not 2"),
    ("unknown SKU on Azure", "azure", "Standard_XYZ99", 1, "Standard_XYZ99 is not offered"),
    ("quota exceeded on Azure", "azure", "Standard_NC24ads_A100_v4", 2, "Standard_NC24ads_A100_v4"),
]


@pytest.mark.parametrize("case", QUOTA_CASES, ids=[c[0] for c in QUOTA_CASES])
def test_compute_and_quota_problems_are_refused_with_advice(case, settings: Settings):
    _, where, sku, instances, expected = case
    if where == "local":
        from bot.bootstrap import build_platform

        check = build_platform(settings).check_quota(sku, instances)
    else:
        from platforms.azureml.quota import FamilyQuota, Usages, VmSizeInfo, check as azure_check

        # Shaped as tests/data/azure/rest/Usage_list.json and VirtualMachineSize_list.json name them.
        family = "Standard NCADSA100v4 Family Cluster Dedicated vCPUs"
        usages = Usages(families={"ncadsa100v4": FamilyQuota(family=family, limit=24, used=12)})
        sizes = {"standard_nc24ads_a100_v4": VmSizeInfo(name="Standard_NC24ads_A100_v4",
                                                        family="standardNCADSA100v4Family", cores=24, gpus=1)}
        check = azure_check(usages, sizes, sku, instances)
    assert not check.ok
    assert expected in check.message
    assert check.suggestions, "says what to do instead"


# -------------------------------------------------------------------- Slack


SLACK_CASES = [
    ("a 5,000-character slash command", "search " + "x" * 4993, "is 5,000 characters long; the limit is 2,000"),
    ("an unknown subcommand", "serch bert", "`serch` is not an fmbot command. Did you mean `/fm search"),
    ("card without a model", "card", "say which model"),
    ("status without a job", "status", "say which job"),
    ("cancel of someone else's job", "cancel {others}", "so you cannot cancel it"),
]


@pytest.fixture
def slack_bot(slack_settings: Settings) -> Iterator[BotServer]:
    server = BotServer(slack_settings)
    yield server
    server.close()


@pytest.mark.parametrize("case", SLACK_CASES, ids=[c[0] for c in SLACK_CASES])
def test_slack_answers_bad_commands_ephemerally(case, slack_bot: BotServer, slack: SlackStandIn, redis: Redis):
    _, text, expected = case
    ids = jobs_to_cancel(redis)
    answer = SlackSender(slack_bot.url).ask(text.format(**ids), slack)[0]
    assert answer["response_type"] == "ephemeral"
    assert expected.format(**ids) in answer["text"], answer["text"]
    assert "Traceback" not in answer["text"]
    assert len(Ledger(redis).recent()) == 2, "nothing recorded beyond the two jobs set up"
    assert not slack.of("chat.postMessage") and not slack.of("views.open")
