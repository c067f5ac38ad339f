"""How a job looks in Teams: one card kept current (progress bar, Cancel), and replies under it.

The card and the replies are built from the ledger's JobRecord alone, as the Slack views are, so
the worker that runs the job and the bot that started it render the same card.
"""

from __future__ import annotations

import base64

from bot.teams.ids import Verb
from bot.teams.limits import clip
from bot.teams.views.cards import Element, card, execute, facts, heading, open_dialog, table, text
from platforms.base import JobState
from workers.ledger import JobRecord
from workers.notifier import JobEvent

STATE_ICONS = {JobState.QUEUED: "⏳", JobState.RUNNING: "⚙️", JobState.COMPLETED: "✅", JobState.FAILED: "❌",
                JobState.CANCELED: "🚫"}
_KIND_NAMES = {"finetune": "Fine-tune", "evaluate": "Evaluation", "deploy": "Deployment", "import": "Import"}
STATE_COLORS = {JobState.COMPLETED: "Good", JobState.FAILED: "Attention", JobState.CANCELED: "Warning"}


def title(record: JobRecord) -> str:
    return f"{STATE_ICONS[record.state]} {_KIND_NAMES.get(record.kind, record.kind)} {record.id} — {record.state}"


def progress_bar(record: JobRecord) -> list[Element]:
    """A bar drawn as two weighted columns (Adaptive Cards have no progress element), then the step."""
    progress = record.progress
    if progress is None:
        return []
    percent = round(progress.fraction * 100)
    columns = []
    if percent > 0:
        columns.append({"type": "Column", "width": f"{percent}", "style": "good", "minHeight": "8px", "items": []})
    if percent < 100:
        columns.append({"type": "Column", "width": f"{100 - percent}", "style": "emphasis", "minHeight": "8px",
                        "spacing": "None", "items": []})
    caption = f"{percent}% · step {progress.step}/{progress.total}"
    if progress.loss is not None:
        caption += f" · loss {progress.loss:.2f}"
    return [{"type": "ColumnSet", "id": "progress", "columns": columns, "spacing": "Small"},
            text(caption, size="Small", isSubtle=True, spacing="Small")]


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {secs:02d} s"


def status_card(record: JobRecord, requester_name: str | None = None) -> Element:
    body: list[Element] = [heading(title(record))]
    if record.state in STATE_COLORS:
        body[0]["color"] = STATE_COLORS[record.state]
    body.append(text(f"{record.model} · {record.task}", isSubtle=True, spacing="None"))
    if record.state == JobState.RUNNING:
        body += progress_bar(record)
    pairs = [("Asked by", requester_name or record.requester), ("Elapsed", elapsed(record.elapsed_seconds)),
             ("Trace", record.trace_id)]
    if record.output_model:
        pairs.insert(0, ("New model", record.output_model))
    body.append(facts(pairs))
    actions: list[Element] = []
    if record.approval == "pending" and not record.state.final:
        body.append(text(f"✋ Waiting for approval: up to {record.gpu_hours:g} GPU instance-hours.", color="Warning"))
        actions = [execute("Approve", Verb.APPROVE_JOB, {"job": record.id}, style="positive"),
                   execute("Reject", Verb.REJECT_JOB, {"job": record.id}, style="destructive")]
    elif not record.state.final:
        actions = [execute("Cancel", Verb.CANCEL_JOB, {"job": record.id}, style="destructive")]
    elif record.state == JobState.COMPLETED and record.output_model:
        actions = result_actions(record.output_model)
        if record.kind == "finetune":
            actions.append(execute("Compare with base", Verb.COMPARE_BASE, {"job": record.id}))
    return card(body, actions + predictions_actions(record))


def predictions_actions(record: JobRecord) -> list[Element]:
    """A completed evaluation's scored rows are offered as a file (Teams sends files only in a
    personal chat; elsewhere the click says so)."""
    if record.kind != "evaluate" or record.state != JobState.COMPLETED or not record.rows:
        return []
    return [execute("Download predictions", Verb.JOB_PREDICTIONS, {"job": record.id})]


def result_actions(model: str) -> list[Element]:
    """Evaluate and Deploy open their dialogs; Register shows the model's catalog card."""
    return [open_dialog("Evaluate", {"kind": "evaluate", "model": model}),
            execute("Register", Verb.JOB_REGISTER, {"model": model}),
            open_dialog("Deploy", {"kind": "deploy", "model": model})]


def metrics_card(record: JobRecord, loss_curve_png: bytes | None = None) -> Element:
    """The finished job's reply: metrics table, a sample, the loss curve, Evaluate · Register · Deploy."""
    model = record.output_model or record.model
    body: list[Element] = [heading(f"Metrics of {model} on the test data")]
    if record.metrics:
        body.append(table(("Metric", "Value"), [(name, f"{value:.4f}") for name, value in record.metrics.items()]))
    else:
        body.append(text("No metrics were reported.", isSubtle=True))
    if record.samples:
        sample = record.samples[0]
        body.append(text(f"Sample: {clip(str(sample.get('input', '')), 200)} → predicted "
                         f"{clip(str(sample.get('prediction')), 200)}, expected {clip(str(sample.get('reference')), 200)}",
                         size="Small"))
    if record.message:
        body.append(text(record.message, isSubtle=True, size="Small"))
    if loss_curve_png:
        body.append({"type": "Image", "altText": f"Training loss of {model}",
                     "url": "data:image/png;base64," + base64.b64encode(loss_curve_png).decode()})
    return card(body, (result_actions(model) if record.output_model else []) + predictions_actions(record))


def reply_text(record: JobRecord, event: JobEvent) -> str | None:
    """A short reply under the card for the events that get one (a finished job gets a card)."""
    if event == JobEvent.STARTED:
        return f"Started {record.id} (attempt {record.attempts})."
    if event == JobEvent.APPROVED:
        return f"Approved by {record.approved_by}; {record.id} is queued."
    if event == JobEvent.RETRYING:
        return f"The worker running {record.id} stopped; retrying. Trace id {record.trace_id}."
    if event == JobEvent.COMPLETED and record.kind == "import":
        return f"Imported into the catalog as {record.output_model}. Try it with `try {record.output_model}`."
    if event == JobEvent.FAILED:
        return f"❌ {record.id} failed: {record.error}"
    if event == JobEvent.CANCELED:
        return f"{record.id} was canceled" + (f" ({record.message})." if record.message else ".")
    endpoint = record.result.get("endpoint", "")
    if event == JobEvent.APPROVAL_REMINDER:
        return f"⏳ {record.id} still waits for an approver; it is rejected at {record.result.get('approval_expires_at')} (UTC)."
    if event == JobEvent.ENDPOINT_EXPIRING:
        return (f"⏰ Endpoint {endpoint} reaches the end of its time to live at {record.result.get('expires_at')} (UTC) "
                "and will be deleted then.")
    if event == JobEvent.ENDPOINT_EXPIRED:
        return f"🗑️ Endpoint {endpoint} reached the end of its time to live and was deleted."
    if event == JobEvent.ENDPOINT_IDLE:
        return (f"💤 Endpoint {endpoint} has had no scoring request for {record.result.get('idle_hours')} h; "
                f"it has cost ${record.result.get('running_usd', 0):,.2f} so far.")
    return None


def endpoint_notice_card(record: JobRecord, event: JobEvent) -> Element:
    """An endpoint's end-of-life warning (Keep N h more · Delete now) or idle notice (Delete), as
    Slack gives them; the buttons act for the owner or an admin only (handlers check)."""
    endpoint = record.result.get("endpoint", "")
    actions = [execute("Delete now", Verb.DELETE_ENDPOINT, {"endpoint": endpoint}, style="destructive")]
    if event == JobEvent.ENDPOINT_EXPIRING:
        actions.insert(0, execute(f"Keep {record.result.get('keep_hours', 8):g} h more", Verb.KEEP_ENDPOINT,
                                  {"endpoint": endpoint}, style="positive"))
    return card([text(reply_text(record, event) or "")], actions)


def deployed_card(endpoint: str, model: str, url: str, owner_mri: str | None, key: str | None = None, *,
                  picked_up: bool = False) -> Element:
    """URL and a curl example for everyone. The key is never in the posted card: Teams runs the
    card's refresh for the owner alone (`refresh.userIds`) and the bot answers that one person with
    this card plus the key (`key`), which nobody else's client ever receives. The key is handed over
    once: a later refresh gets the card `picked_up`, which says how to get a new one."""
    body = [heading(f"🚀 Endpoint {endpoint} serves {model}"), text(url, fontType="Monospace"),
            text(f"curl -X POST '{url}' -H \"Authorization: Bearer $FMBOT_KEY\" -H 'Content-Type: application/json' "
                 "-d '{\"input_data\": [\"I loved it\"]}'", fontType="Monospace", size="Small")]
    if picked_up:
        body.append(text(f"You were shown this endpoint's key once; fmbot keeps only its hash. Send `rotate-key "
                         f"{endpoint}` for a new one (the old one then stops working).", isSubtle=True, size="Small"))
    elif key is None:
        body.append(text("The key is never posted in the conversation: its owner sees it on this card, nobody else.",
                         isSubtle=True, size="Small"))
    else:
        body.append(facts([("Key (only you see it)", key)]))
    show = execute("Show key", Verb.SHOW_KEY, {"endpoint": endpoint})
    refresh = {"action": show, "userIds": [owner_mri]} if owner_mri else None
    return card(body, None if key else [show], refresh=refresh)
