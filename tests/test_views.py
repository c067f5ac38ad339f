"""Every Block Kit builder, fed the largest inputs fmbot can meet, stays within Slack's limits
(bot/slack/limits.py). Pure functions, no HTTP: the same checks the Slack stand-in applies to every call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from bot.slack.limits import message_problems, view_problems
from bot.slack.state import FormState
from bot.slack.views import catalog, deploy, forms, home
from bot.slack.views.jobs import SlackJobRenderer
from platforms.base import DataRef, EndpointInfo, EndpointState, JobState, ModelCard, Progress
from platforms.tasks import Task
from workers.ledger import JobRecord, ReplyTarget
from workers.notifier import JobEvent

LONG = "word " * 2000
METADATA = "m" * 100


def card(index: int = 0) -> ModelCard:
    return ModelCard(name=f"model-{index}-{'x' * 60}", version="1", tasks=list(Task), license="mit",
                     description=LONG, metrics={f"metric-{n}": n / 7 for n in range(40)},
                     inference_compute=["cpu", "serverless"], finetune_compute=["cpu"])


def record(state: JobState = JobState.COMPLETED, kind: str = "finetune") -> JobRecord:
    return JobRecord(id="ft-1a2b3c4d", kind=kind, model=card().ref, task=Task.TEXT_CLASSIFICATION, spec={},
                     requester="U0USER", reply_to=ReplyTarget(channel="C0CHAN", thread_ts="1.2"), state=state,
                     progress=Progress(step=5, total=10, message=LONG), metrics={f"m{n}": n / 3 for n in range(60)},
                     output_model=f"{card().name}-ft:1", error=LONG if state == JobState.FAILED else None,
                     loss_history=[(n, 1 / (n + 1)) for n in range(500)],
                     samples=[{"input": LONG, "prediction": LONG, "label": LONG}] * 20,
                     created_at=datetime.now(UTC))


def endpoint(index: int = 0) -> EndpointInfo:
    return EndpointInfo(name=f"ep-{index}", model=card().ref, task=Task.TEXT_CLASSIFICATION,
                        url=f"http://127.0.0.1:{8000 + index}/score", state=EndpointState.HEALTHY, instances=1,
                        owner="U0USER", message=LONG)


def form_state(kind: str = "finetune") -> FormState:
    return FormState(kind=kind, channel="C0CHAN", user="U0USER", model=card().ref, task=Task.TEXT_CLASSIFICATION,
                     train=DataRef(path="/tmp/train.jsonl", name="train.jsonl"),
                     test=DataRef(path="/tmp/test.jsonl", name="test.jsonl"),
                     columns=[f"column_{n}_{'c' * 40}" for n in range(300)], error=LONG)


@pytest.mark.parametrize("count", [0, 1, 500])
def test_search_results_and_model_cards(count):
    cards = [card(n) for n in range(count)]
    assert message_problems(catalog.search_results(cards, LONG[:500], "text-classification")) == []
    assert message_problems(catalog.search_results(cards, "", None, page=3)) == []
    for one in cards[:3]:
        assert message_problems(catalog.model_card(one)) == []


@pytest.mark.parametrize("kind", ["finetune", "evaluate"])
def test_form_steps(kind):
    state = form_state(kind)
    models = [card(n) for n in range(300)]
    assert view_problems(forms.data_step(state, models, METADATA)) == []
    assert view_problems(forms.checking_step(state, METADATA, "every row of your data")) == []
    assert view_problems(forms.mapping_step(state, METADATA, {"sentence1": state.columns[0]})) == []
    assert view_problems(forms.compute_step(state, METADATA)) == []


def test_deploy_and_import_modals_endpoint_lists_and_keys():
    assert view_problems(deploy.deploy_modal(card(), METADATA, serverless=True)) == []
    assert view_problems(deploy.deploy_modal(card(), METADATA, serverless=False)) == []
    assert view_problems(deploy.import_modal(METADATA, model_id="o" * 300, task="fill-mask")) == []
    for endpoints in ([], [endpoint(n) for n in range(300)]):
        assert message_problems(deploy.endpoint_list(endpoints)) == []
    with_key = endpoint().model_copy(update={"key": SecretStr("k" * 43), "name": "e" * 32})
    for message in (deploy.key_message(with_key), deploy.key_message(with_key, rotated=True),
                    deploy.key_message(endpoint())):
        assert message_problems(message) == []
    assert "Rotate key" in str(deploy.key_message(endpoint())["blocks"]), "a key shown once offers rotation"


def test_home_tab():
    records = [record(state) for state in JobState for _ in range(20)]
    assert view_problems(home.home_view(records, [endpoint(n) for n in range(100)])) == []
    assert view_problems(home.home_view([], [])) == []


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("kind", ["finetune", "evaluate", "deploy", "import"])
def test_job_messages_for_every_state_and_event(state, kind):
    renderer, job = SlackJobRenderer(), record(state, kind)
    status = renderer.status_message(job)
    assert message_problems({"text": status.text, "blocks": status.blocks}) == []
    for event in JobEvent:
        reply = renderer.thread_reply(job, event)
        if reply is not None:
            assert message_problems({"text": reply.text, "blocks": reply.blocks}) == [], event
