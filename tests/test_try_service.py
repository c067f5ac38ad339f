"""`/fm try` and `fmbot try` answered by the warm try service beside a real worker, never in the bot.

The service is forked by a real `fmbot worker` process; the bot and the CLI hand it requests
through the test's private Redis. Two models tried at once each answer with their own output (one
shared slot used to mix them up), a user over `tries_per_minute` is refused with the limit, and
with no service running Slack is told so instead of the bot loading the model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.bootstrap import build_runtime
from bot.settings import Settings
from handlers import policy
from handlers.errors import UserError
from handlers.limits import LimitReached
from handlers.tryout import try_model
from platforms.local import LocalPlatform
from platforms.tasks import Task
from tests.helpers import DATA, ROOT, settings_env, wait_until
from tests.slack_standin import SlackSender, SlackStandIn
from tests.tiny_models import add_tiny_bert
from workers import keys

TEXTS = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]


def _two_models(root: Path) -> tuple[str, str]:
    """Two tiny classifiers with label sets of their own, so an answer shows whose it is."""
    first = add_tiny_bert(root, TEXTS, name="tiny-first", seed=1).ref
    second = add_tiny_bert(root, TEXTS, name="tiny-second", seed=2).ref
    for ref, labels in ((first, ["apple", "pear"]), (second, ["red", "blue", "green"])):
        folder = root / ref.replace(":", "/")
        config = json.loads((folder / "config.json").read_text())
        config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        config["label2id"] = {label: i for i, label in enumerate(labels)}
        (folder / "config.json").write_text(json.dumps(config))
    return first, second


def test_concurrent_tries_of_two_models_answer_with_their_own_model(models_dir: Path):
    first, second = _two_models(models_dir)
    platform = LocalPlatform(models_dir, seed=False)
    wrong: list[str] = []

    def tries(ref: str, labels: set[str]) -> None:
        for _ in range(40):
            try:
                label = platform.try_model(ref, Task.TEXT_CLASSIFICATION, [{"sentence1": "a fine film"}])[0]["label"]
            except Exception as exc:  # the slot emptied under it by the other thread's load
                wrong.append(f"{ref} raised {exc!r}")
                continue
            if label not in labels:
                wrong.append(f"{ref} answered {label}")

    threads = [threading.Thread(target=tries, args=(first, {"apple", "pear"})),
               threading.Thread(target=tries, args=(second, {"red", "blue", "green"}))]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave as they would on a busy bot with many requests
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert wrong == []


def test_concurrent_tries_of_one_cold_model_load_it_once(models_dir: Path, monkeypatch):
    """Four people try a model nobody has loaded, at once: it is loaded once, not four times over
    (each load of a large model takes seconds and its memory)."""
    import platforms.local as local

    ref = add_tiny_bert(models_dir, TEXTS).ref
    loads: list[str] = []
    real = local.predictor_module

    class Counting:
        def __init__(self, module):
            self.module = module

        def load_predictor(self, path, **options):
            loads.append(str(path))
            time.sleep(0.3)  # a real model takes seconds: long enough for the others to arrive
            return self.module.load_predictor(path, **options)

    monkeypatch.setattr(local, "predictor_module", lambda task: Counting(real(task)))
    platform = LocalPlatform(models_dir, seed=False)
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(platform.try_model(
        ref, Task.TEXT_CLASSIFICATION, [{"sentence1": "a fine film"}])[0]["label"])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and len(loads) == 1, f"{len(loads)} loads for 4 concurrent tries"


def test_try_is_answered_by_the_service_beside_a_worker(settings: Settings, start_worker, redis):
    first, second = _two_models(Path(settings.fmbot_models_dir))
    worker = start_worker(settings)
    assert wait_until(lambda: redis.exists(keys.try_alive()), 60), worker.output()
    rt = build_runtime(settings, slack=False)
    answered = try_model(rt, first, "what a lovely day")
    assert answered.model == first and answered.outputs[0]["label"] in {"apple", "pear"}
    with pytest.raises(UserError, match="does not support question-answering"):
        try_model(rt, second, "who? ||| me", Task.QUESTION_ANSWERING)
    assert rt._platform is None, "the caller built no platform: the model was loaded in the service"

    # The CLI asks the running service too, and never imports torch for it.
    probe = ("import sys; from bot.cli import main; code = main(['try', %r, 'a', 'lovely', 'day', '--json']); "
             "print('torch' in sys.modules, file=sys.stderr); sys.exit(code)") % second
    done = subprocess.run([sys.executable, "-c", probe], env=settings_env(settings), cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"][0]["label"] in {"red", "blue", "green"}
    assert done.stderr.strip().splitlines()[-1] == "False"


def test_a_user_over_tries_per_minute_is_refused_with_the_limit(settings: Settings, monkeypatch):
    rules = policy.Policy.model_validate({"admins": ["U0ADMIN"], "limits": {"user": {"tries_per_minute": 2}}})
    monkeypatch.setattr(policy, "_current", rules)
    rt = build_runtime(settings, slack=False)
    add_tiny_bert(Path(settings.fmbot_models_dir), TEXTS)
    for _ in range(2):
        try_model(rt, "tiny-bert", "hello", requester="U0USER", in_process=True)
    with pytest.raises(LimitReached) as refused:
        try_model(rt, "tiny-bert", "hello", requester="U0USER", in_process=True)
    text = str(refused.value)
    assert "the limit is 2 a minute per user" in text and "limits.user.tries_per_minute" in text
    assert "<@U0ADMIN>" in text and refused.value.field == "tries_per_minute"
    try_model(rt, "tiny-bert", "hello", requester="U0OTHER", in_process=True)  # another user is not held back


def test_slack_try_without_a_service_says_so_instead_of_loading_in_the_bot(bot, slack: SlackStandIn, tiny_model):
    answer = SlackSender(bot.url).ask(f"try {tiny_model} what a lovely film", slack, answers=2)[1]
    assert "no try service is running" in answer["text"] and "fmbot worker" in answer["text"]
    assert bot.runtime.platform._predictors == {}, "the bot loaded no model"
