"""Every Teams card fmbot builds is a valid Adaptive Card 1.5 that fits Teams' size limit, the
manifest validates against the published Teams schema, and the stand-in's checks can fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.teams.limits import MESSAGE_BYTES, message_size  # noqa: E402
from workers.costs import Estimate  # noqa: E402
from bot.teams.manifest import DEPLOY, build_manifest  # noqa: E402
from bot.teams.state import FormState, SharedFile  # noqa: E402
from bot.teams.views import catalog, compare, data, forms, jobs  # noqa: E402
from handlers.registry import COMMANDS, Surface, on  # noqa: E402
from platforms.base import ComputeOption, DataRef, DatasetInfo, JobState, ModelCard, Progress  # noqa: E402
from platforms.datasets.preview import Preview, PreviewRow  # noqa: E402
from platforms.tasks import Task  # noqa: E402
from tests.teams_standin import card_problems  # noqa: E402
from tests.test_compare import comparison_record  # noqa: E402
from workers.compare import Leaderboard, LeaderboardEntry  # noqa: E402
from workers.ledger import JobRecord  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "teams"


def record(**changes) -> JobRecord:
    started = datetime.now(UTC) - timedelta(minutes=3)
    base = JobRecord(id="ft-1a2b3c4d", kind="finetune", model="all-MiniLM-L6-v2:1", task="text-classification",
                     spec={}, requester="aaaaaaaa-0000-4000-8000-000000000001", created_at=started, started_at=started)
    return base.model_copy(update=changes)


def models(count: int) -> list[ModelCard]:
    return [ModelCard(name=f"model-{i}-" + "x" * 40, version="1", tasks=[Task.TEXT_CLASSIFICATION],
                      description="d" * 400, license="mit", metrics={"accuracy": 0.9}) for i in range(count)]


def datasets(count: int) -> list[DatasetInfo]:
    return [DatasetInfo(name=f"dataset-{i}-" + "d" * 80, version="3", path="/x", file_name="f" * 200 + ".jsonl",
                        rows=10_000, columns=[f"c{j}-" + "c" * 40 for j in range(50)], registered_by="U" * 40,
                        description="about " * 300) for i in range(count)]


def preview() -> Preview:
    return Preview(task=Task.TEXT_CLASSIFICATION, file="p" * 400, rows=5000, skipped=3,
                   first=[PreviewRow(input="i" * 3000, target="t" * 500) for _ in range(5)],
                   distribution={f"label-{i}-" + "l" * 60: i for i in range(200)}, distribution_of="label",
                   warnings=["w" * 2000 for _ in range(5)])


def leaderboard(entries: int) -> Leaderboard:
    return Leaderboard(task="text-classification", dataset="abc123-def456", dataset_name="t" * 300,
                       mapping={f"k{i}": "v" * 100 for i in range(5)}, primary="accuracy",
                       entries=[LeaderboardEntry(model=f"model-{'x' * 80}-{i}:1", job=f"ev-{i:08d}",
                                                 metrics={"accuracy": 1 / (i + 1)}, primary="accuracy",
                                                 finished_at=datetime.now(UTC)) for i in range(entries)])


def cards() -> dict[str, dict]:
    state = FormState(id="f0rm1d", owner="aaaaaaaa-0000-4000-8000-000000000001", kind="finetune", model="model-1", task="text-classification",
                      train=DataRef(path="/tmp/t.jsonl", name="t.jsonl"),
                      columns=[f"column_{i}_" + "c" * 60 for i in range(400)], mapping={"sentence1": "a", "label": "b"})
    shared = [SharedFile(id=f"f{i}", name=f"file-{i}.jsonl", url="https://x.sharepoint.com/f", size=2048) for i in range(20)]
    running = record(state=JobState.RUNNING, progress=Progress(step=130, total=250, loss=0.41))
    done = record(state=JobState.COMPLETED, output_model="all-MiniLM-L6-v2-ft:1", finished_at=datetime.now(UTC),
                  metrics={f"metric_{i}": i / 100 for i in range(40)},
                  samples=[{"input": "i" * 5000, "prediction": "p" * 5000, "reference": "r"}])
    comparison = comparison_record(8, metric_chars=120)
    comparing = FormState(id="f0rm2d", owner="o", kind="evaluate", task="text-classification",
                          test=DataRef(path="/tmp/t.jsonl", name="t.jsonl"), columns=state.columns,
                          mapping=state.mapping, models=[f"model-{'m' * 60}-{i}:1" for i in range(8)],
                          left_out={f"other-{'o' * 60}-{i}:1": "e" * 400 for i in range(8)}, preview=preview(),
                          bad_rows=12_345)
    png = (Path(__file__).resolve().parent.parent / "deploy" / "teams" / "color.png").read_bytes()
    return {
        "queued": jobs.status_card(record()),
        "running": jobs.status_card(running, "Alice Example"),
        "pending approval": jobs.status_card(record(approval="pending", gpu_hours=48)),
        "completed": jobs.status_card(done),
        "failed": jobs.status_card(record(state=JobState.FAILED, error="e" * 20000)),
        "metrics": jobs.metrics_card(done, png),
        "deployed": jobs.deployed_card("minilm-demo", "m:1", "http://127.0.0.1:1/score", "29:abc"),
        "key": jobs.deployed_card("minilm-demo", "m:1", "http://127.0.0.1:1/score", "29:abc", key="k" * 64),
        "model card": catalog.model_card(models(1)[0]),
        "search": catalog.search_results(models(300), "model", None),
        "data step": forms.data_step(state, models(300), shared, datasets(300), {"form": "f" * 5000, "model": "m" * 5000}),
        "data step, no files": forms.data_step(FormState(kind="evaluate"), models(2), [], [], {}),
        "data step of a comparison": forms.data_step(comparing, models(300), shared, datasets(300), {}),
        "mapping step": forms.mapping_step(state, {"sentence1": "column_1_" + "c" * 60}, {"map.label": "pick one"}),
        "mapping step with preview, left out and skip": forms.mapping_step(comparing, {}, {"form": "b" * 5000}),
        "comparison (8 models)": compare.status_card(comparison, "Alice Example"),
        "comparison result (8 models)": compare.result_card(comparison, png),
        "leaderboard": compare.leaderboard_card(leaderboard(600)),
        "datasets": data.dataset_list(datasets(300)),
        "dataset": data.dataset_details(datasets(1)[0]),
        "compute step": forms.compute_step(state, [ComputeOption(name=f"cuda:{i}", label=f"GPU {i} · 1 free")
                                                   for i in range(200)],
                                           [("cuda:0", Estimate(seconds_low=5400, seconds_high=7200, gpu_hours_low=1.5,
                                                                gpu_hours_high=2, usd_low=5.5, usd_high=7.3,
                                                                size="Standard_NC24ads_A100_v4"))],
                                           {"compute": "no quota"}),
    }


@pytest.mark.parametrize("name", list(cards()))
def test_every_card_is_valid_adaptive_card_1_5_within_teams_size_limit(name):
    card = cards()[name]
    assert card_problems(card, name) == []
    assert message_size({"type": "message", "attachments": [{"content": card}]}) <= MESSAGE_BYTES


def test_the_schema_check_and_the_size_limit_can_fail():
    broken = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "txt": "typo"}]}
    assert card_problems(broken, "broken")
    assert card_problems({**jobs.status_card(record()), "version": "1.6"}, "too new")
    huge = {"type": "message", "text": "x" * MESSAGE_BYTES}
    assert message_size(huge) > MESSAGE_BYTES


def test_the_running_card_draws_its_progress_and_a_cancel_button():
    card = jobs.status_card(record(state=JobState.RUNNING, progress=Progress(step=130, total=250, loss=0.41)))
    bar = next(e for e in card["body"] if e.get("id") == "progress")
    assert [c["width"] for c in bar["columns"]] == ["52", "48"]
    assert "52% · step 130/250 · loss 0.41" in json.dumps(card, ensure_ascii=False)
    assert card["actions"] == [{"type": "Action.Execute", "title": "Cancel", "verb": "fmbot.job.cancel",
                                "data": {"job": "ft-1a2b3c4d"}, "style": "destructive"}]


def test_the_deployed_card_shows_the_key_only_in_the_owners_refresh():
    public = jobs.deployed_card("minilm-demo", "m:1", "http://h/score", "29:owner")
    assert "k" * 16 not in json.dumps(public)
    assert public["refresh"]["userIds"] == ["29:owner"]
    assert "k" * 16 in json.dumps(jobs.deployed_card("minilm-demo", "m:1", "http://h/score", "29:owner", key="k" * 16))


def test_manifest_is_valid_and_generated_from_the_registry():
    schema = json.loads((DATA / "MicrosoftTeams.v1.19.schema.json").read_text())
    manifest = json.loads((DEPLOY / "manifest.json").read_text())
    assert list(jsonschema.Draft4Validator(schema).iter_errors(manifest)) == []
    assert manifest == build_manifest(), "regenerate deploy/teams/manifest.json from bot/teams/manifest.py"
    bot = manifest["bots"][0]
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    for command in bot["commandLists"][0]["commands"]:
        assert command["title"] in {c.name for c in on(Surface.TEAMS)}
        assert command["description"] == COMMANDS[command["title"]].summary
    color, outline = Image.open(DEPLOY / "color.png"), Image.open(DEPLOY / "outline.png")
    assert color.size == (192, 192) and outline.size == (32, 32)
    pixels = np.asarray(outline.convert("RGBA")).reshape(-1, 4)
    assert {tuple(p[:3]) for p in pixels if p[3]} == {(255, 255, 255)}, "outline: white on transparent only"
