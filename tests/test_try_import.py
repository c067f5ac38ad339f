"""`try`, `import` and the deploy commands from the `fmbot` command line, through the real queue.

`try` runs in a warm try service, or in the operator's CLI when none runs (tests/test_try_service.py
covers the service); most of it is tested through the handler in this process (after the first
model load it answers in milliseconds); one real `fmbot try` subprocess checks the command end to end. Deploy and import are queued jobs: a real worker runs them, a real endpoint answers, and
the endpoint is still there after that worker stops.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.cli import main
from bot.bootstrap import build_runtime
from bot.settings import Settings
from handlers.errors import UserError
from handlers.tryout import try_model
from platforms.base import ImportSpec, PlatformError
from platforms.local import LocalPlatform
from platforms.local.endpoints import predictor_module
from platforms.hub import hub_offline
from platforms.tasks import Task
from tests import tiny_models
from tests.helpers import DATA, fmbot, settings_env

TEXTS = ["hello world i feel great", "the house is wonderful and the garden is full of flowers",
         "My name is Wolfgang and I live in Berlin", "Paris is the [MASK] of France.",
         "What is the capital of France?", "the movie was bad"] * 3
# For each task: the tiny model helper, its options, and a text a user might type.
TRIES = {
    Task.TEXT_CLASSIFICATION: ("add_tiny_bert", {}, "I loved this movie ||| It was great"),
    Task.TOKEN_CLASSIFICATION: ("add_tiny_bert", {"tasks": (Task.TOKEN_CLASSIFICATION,)}, "Wolfgang lives in Berlin"),
    Task.QUESTION_ANSWERING: ("add_tiny_bert", {"tasks": (Task.QUESTION_ANSWERING,)},
                              "Where does Wolfgang live? ||| My name is Wolfgang and I live in Berlin"),
    Task.SUMMARIZATION: ("add_tiny_t5", {"tasks": (Task.SUMMARIZATION,)}, "The tower is 324 metres tall."),
    Task.TRANSLATION: ("add_tiny_t5", {"tasks": (Task.TRANSLATION,)}, "The house is wonderful."),
    Task.TEXT_GENERATION: ("add_tiny_gpt2", {}, "Once upon a time"),
    Task.CHAT_COMPLETION: ("add_tiny_gpt2", {}, '{"messages": [{"role": "user", "content": "Hi there"}]}'),
    Task.FILL_MASK: ("add_tiny_masked_bert", {}, "Paris is the [MASK] of France."),
}


def _tiny(root: Path, task: Task) -> str:
    builder, options, _ = TRIES[task]
    try:
        predictor_module(task)
    except PlatformError as exc:
        pytest.skip(str(exc))
    build = getattr(tiny_models, builder, None)
    if build is None:
        pytest.skip(f"tests/tiny_models.py has no {builder} yet")
    return build(root, TEXTS, name=f"tiny-{task}", **options).ref


def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, settings: Settings,
        *argv: str) -> tuple[int, str, str]:
    """`fmbot ARGV` in this process, configured by the environment exactly as a shell would be."""
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------- try


@pytest.mark.parametrize("task", list(TRIES), ids=str)
def test_try_answers_for_every_task_with_and_without_text(settings: Settings, task: Task):
    ref = _tiny(settings.fmbot_models_dir, task)
    rt = build_runtime(settings, slack=False)
    sample = try_model(rt, ref, "", task, in_process=True)
    assert sample.sample_input and sample.inputs == [rt.platform.sample_input(task)]
    assert len(sample.outputs) == 1 and isinstance(sample.outputs[0], dict) and sample.outputs[0]
    typed = try_model(rt, ref, TRIES[task][2], task, in_process=True)
    assert not typed.sample_input and len(typed.outputs) == 1 and typed.seconds < 10


def test_try_reads_pairs_and_refuses_what_it_cannot_read(settings: Settings):
    qa = _tiny(settings.fmbot_models_dir, Task.QUESTION_ANSWERING)
    rt = build_runtime(settings, slack=False)
    pair = try_model(rt, qa, "Who? ||| Wolfgang lives in Berlin", Task.QUESTION_ANSWERING, in_process=True)
    assert pair.inputs == [{"question": "Who?", "context": "Wolfgang lives in Berlin"}]
    with pytest.raises(UserError, match="needs a question and a context") as refused:
        try_model(rt, qa, "just a question", Task.QUESTION_ANSWERING, in_process=True)
    assert "QUESTION ||| CONTEXT" in str(refused.value)
    with pytest.raises(UserError, match="does not support text-classification"):
        try_model(rt, qa, "hello", Task.TEXT_CLASSIFICATION, in_process=True)


def test_fmbot_try_command_prints_json(settings: Settings):
    _tiny(settings.fmbot_models_dir, Task.TEXT_CLASSIFICATION)
    started = time.monotonic()
    done = fmbot(settings, "try", "tiny-text-classification", "what", "a", "lovely", "day", "--json")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["inputs"] == [{"sentence1": "what a lovely day"}] and "label" in result["outputs"][0]
    print(f"\n`fmbot try --json` subprocess, start to answer: {seconds:.1f}s (model predict {result['seconds']}s)")


# -------------------------------------------------------------------------------- deploy refusals


@pytest.mark.parametrize("argv, reason", [
    (["--endpoint", "1-starts-with-digit"], "a letter first"),
    (["--endpoint", "ab"], "3 to 32 characters"),
    (["--endpoint", "has_underscore"], "letters, digits or hyphens"),
    (["--endpoint", "x" * 33], "3 to 32 characters"),
    (["--endpoint", "fine-name", "--instances", "0"], "instances must be 1 to 8, not 0"),
    (["--endpoint", "fine-name", "--instances", "9"], "instances must be 1 to 8, not 9"),
])
def test_deploy_refuses_bad_names_and_instance_counts(capsys, monkeypatch, settings: Settings, argv, reason):
    _tiny(settings.fmbot_models_dir, Task.TEXT_CLASSIFICATION)
    code, _, err = cli(capsys, monkeypatch, settings, "deploy", "tiny-text-classification", *argv)
    assert code == 2 and reason in err, err
    assert cli(capsys, monkeypatch, settings, "jobs", "--json")[1].strip() == "[]"


def test_deploy_refuses_an_unknown_model_before_queueing(capsys, monkeypatch, settings: Settings):
    code, _, err = cli(capsys, monkeypatch, settings, "deploy", "no-such-model", "--endpoint", "ep-one")
    assert code == 2 and "not in the catalog" in err


# -------------------------------------------------------------------------------- import refusals


def _hf_folder(root: Path, readme: str | None) -> Path:
    card = tiny_models.add_tiny_bert(root, TEXTS, name="downloaded", tasks=(Task.FILL_MASK,))
    folder = root / card.name / card.version
    (folder / "fmbot-card.json").unlink()
    if readme is not None:
        (folder / "README.md").write_text(readme)
    return folder


@pytest.mark.parametrize("argv, reason", [
    (["acme/tiny", "--task", "chat-completion"], "Import supports: fill-mask, token-classification"),
    (["acme/tiny", "--task", "speech-recognition"], "text-to-image"),
    (["just-a-name", "--task", "fill-mask"], "use OWNER/NAME"),
    (["acme/tiny/extra", "--task", "fill-mask"], "use OWNER/NAME"),
    (["acme/tiny", "--task", "fill-mask", "--from", "/no/such/folder"], "is not a folder"),
])
def test_import_refuses_bad_tasks_ids_and_folders(capsys, monkeypatch, settings: Settings, argv, reason):
    code, _, err = cli(capsys, monkeypatch, settings, "import", *argv)
    assert code == 2 and reason in err, err
    assert cli(capsys, monkeypatch, settings, "jobs", "--json")[1].strip() == "[]"


def test_import_from_a_folder_reads_license_and_base_model(settings: Settings, tmp_path: Path):
    folder = _hf_folder(tmp_path / "hf", "---\nlicense: apache-2.0\nbase_model: google-bert/bert-base-uncased\n"
                                         "tags: [fill-mask]\n---\n# A model\n")
    platform = LocalPlatform(settings.fmbot_models_dir, seed=False)
    outcome = platform.import_model(ImportSpec(model_id="acme/tiny-mlm", task="fill-mask", source=str(folder)),
                                    lambda progress: None)
    card = platform.get_model(outcome.output_model)
    assert (card.name, card.version, card.tasks) == ("acme-tiny-mlm", "1", [Task.FILL_MASK])
    assert card.license == "apache-2.0" and card.base_model == "google-bert/bert-base-uncased"
    assert card.source == f"import: {folder.resolve()}"
    again = platform.import_model(ImportSpec(model_id="acme/tiny-mlm", task="fill-mask", source=str(folder),
                                             license="mit"), lambda progress: None)
    assert again.output_model == "acme-tiny-mlm:2" and platform.get_model("acme-tiny-mlm:2").license == "mit"
    with pytest.raises(PlatformError, match="has no config.json"):
        platform.import_model(ImportSpec(model_id="acme/empty", task="fill-mask", source=str(tmp_path)),
                              lambda progress: None)


def test_import_without_from_says_the_hub_is_offline(settings: Settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()
    platform = LocalPlatform(settings.fmbot_models_dir, seed=False)
    with pytest.raises(PlatformError, match="hub is unreachable: HF_HUB_OFFLINE is set") as refused:
        platform.import_model(ImportSpec(model_id="acme/anything", task="fill-mask"), lambda progress: None)
    assert "--from PATH" in str(refused.value)
    assert platform.list_models() == []


# ---------------------------------------------------------------- the queue: deploy, import, delete


@pytest.fixture
def no_endpoints_left(settings: Settings, redis):
    """Stop whatever a failing test left serving, so no process outlives the test run."""
    yield
    platform = LocalPlatform(settings.fmbot_models_dir, seed=False, redis=redis)
    for info in platform.list_endpoints():
        platform.delete_endpoint(info.name)


def test_deploy_and_import_through_the_queue_and_endpoints_survive_the_worker(
        capsys, monkeypatch, settings: Settings, start_worker, tmp_path: Path, no_endpoints_left):
    _tiny(settings.fmbot_models_dir, Task.TEXT_CLASSIFICATION)
    worker = start_worker(settings)
    try:
        started = time.monotonic()
        code, out, err = cli(capsys, monkeypatch, settings, "deploy", "tiny-text-classification",
                             "--endpoint", "cli-endpoint", "--wait", "--json")
        assert code == 0, err + worker.output()
        deployed = json.loads(out)
        print(f"\n`fmbot deploy --wait` through the queue: {time.monotonic() - started:.1f}s")
        assert deployed["job"]["state"] == "completed" and deployed["job"]["kind"] == "deploy"
        endpoint = deployed["endpoint"]
        assert endpoint["state"] == "healthy" and endpoint["url"].startswith("http://127.0.0.1:")
        assert endpoint["key"] not in json.dumps(deployed["job"])

        code, _, err = cli(capsys, monkeypatch, settings, "deploy", "tiny-text-classification",
                           "--endpoint", "cli-endpoint")
        assert code == 2 and "already exists" in err

        folder = _hf_folder(tmp_path / "hf", "---\nlicense: bsd-3-clause\n---\n")
        code, out, err = cli(capsys, monkeypatch, settings, "import", "acme/tiny-mlm", "--task", "fill-mask",
                             "--from", str(folder), "--wait", "--json")
        imported = json.loads(out)
        assert code == 0 and imported["state"] == "completed" and imported["output_model"] == "acme-tiny-mlm:1", err
        card = json.loads(cli(capsys, monkeypatch, settings, "card", "acme-tiny-mlm", "--json")[1])
        assert card["license"] == "bsd-3-clause" and card["tasks"] == ["fill-mask"]

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        worker.stop()
        worker = start_worker(settings)
        code, out, _ = cli(capsys, monkeypatch, settings, "import", "acme/not-here", "--task", "fill-mask",
                           "--wait", "--json")
        offline = json.loads(out)
        assert code == 1 and offline["state"] == "failed" and "hub is unreachable" in offline["error"]
    finally:
        worker.stop()

    code, out, _ = cli(capsys, monkeypatch, settings, "endpoints", "--json")
    listed = {e["name"]: e for e in json.loads(out)}
    assert listed["cli-endpoint"]["state"] == "healthy" and "key" not in listed["cli-endpoint"]
    request = urllib.request.Request(endpoint["url"], data=(DATA / "endpoint-requests/text-classification/"
                                                            "sample_score.json").read_bytes(),
                                     headers={"Authorization": f"Bearer {endpoint['key']}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert len(json.loads(response.read())) == 10
    code, out, _ = cli(capsys, monkeypatch, settings, "endpoints", "--show-keys", "--json")
    assert json.loads(out)[0]["key"] is None, "`deploy --wait` picked the key up; it is shown once"
    code, out, _ = cli(capsys, monkeypatch, settings, "endpoints", "--show-keys")
    assert "shown once already; get a new one with: fmbot rotate-key cli-endpoint" in out
    code, out, _ = cli(capsys, monkeypatch, settings, "rotate-key", "cli-endpoint", "--json")
    rotated = json.loads(out)["key"]
    assert code == 0 and rotated and rotated != endpoint["key"]
    for key, status in ((endpoint["key"], 401), (rotated, 200)):
        request = urllib.request.Request(endpoint["url"], data=b'{"input_data": ["hi"]}',
                                         headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == status
        except urllib.error.HTTPError as error:
            assert error.code == status

    code, out, _ = cli(capsys, monkeypatch, settings, "delete-endpoint", "cli-endpoint")
    assert code == 0 and "Deleted endpoint cli-endpoint" in out
    assert json.loads(cli(capsys, monkeypatch, settings, "endpoints", "--json")[1]) == []
    code, _, err = cli(capsys, monkeypatch, settings, "delete-endpoint", "cli-endpoint")
    assert code == 2 and 'no endpoint "cli-endpoint"' in err
