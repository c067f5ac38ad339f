"""How a job looks in Slack: its status message, its thread replies, its metrics table."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.slack.ids import ActionId
from bot.slack.limits import clip
from bot.slack.views.mrkdwn import escape
from platforms.base import JobState
from workers.ledger import JobRecord
from workers.notifier import ChatMessage, FileAttachment, JobEvent

BAR_WIDTH = 10
_STATE_ICONS = {
    JobState.QUEUED: ":hourglass_flowing_sand:",
    JobState.RUNNING: ":gear:",
    JobState.COMPLETED: ":white_check_mark:",
    JobState.FAILED: ":x:",
    JobState.CANCELED: ":no_entry_sign:",
}
_KIND_NAMES = {"finetune": "Fine-tune", "evaluate": "Evaluation", "deploy": "Deployment", "import": "Import",
               "compare": "Comparison"}


def progress_bar(record: JobRecord) -> str:
    """`▓▓▓▓▓░░░░░ 52% · step 130/250 · loss 0.41`"""
    progress = record.progress
    if progress is None:
        return ""
    filled = round(progress.fraction * BAR_WIDTH)
    text = f"{'▓' * filled}{'░' * (BAR_WIDTH - filled)} {progress.fraction:.0%} · step {progress.step}/{progress.total}"
    if progress.loss is not None:
        text += f" · loss {progress.loss:.2f}"
    return text


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _when(iso: str | None) -> str:
    """A time in the reader's own time zone (Slack's date formatting), with a UTC fallback."""
    if not iso:
        return "soon"
    from datetime import datetime

    moment = datetime.fromisoformat(iso)
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "_no metrics_"
    width = max(len(name) for name in metrics)
    rows = "\n".join(f"{name.ljust(width)}  {value:.4f}" for name, value in metrics.items())
    return f"```\n{rows}\n```"


def headline(record: JobRecord) -> str:
    kind = _KIND_NAMES.get(record.kind, record.kind)
    return f"{_STATE_ICONS[record.state]} *{kind}* `{record.id}` of `{escape(record.model)}` ({record.task}) — *{record.state}*"


def deployed_reply(record: JobRecord) -> ChatMessage:
    """URL and a curl example for the channel; the key stays behind the owner-only button."""
    from bot.slack.views.deploy import show_key_button

    name, url = record.result.get("endpoint", ""), record.result.get("url", "")
    text = (f":rocket: Endpoint *{name}* serves `{record.model}` at {url}\n"
            f"```curl -X POST '{url}' -H \"Authorization: Bearer $FMBOT_KEY\" -H 'Content-Type: application/json' "
            f"-d '{{\"input_data\": [\"I loved it\"]}}'```\n"
            f"<@{record.requester}> can press *Show key*; the key is never posted in the channel.")
    blocks = [SectionBlock(text=MarkdownTextObject(text=clip(text, 3000))).to_dict(), show_key_button(name)]
    return ChatMessage(text=text, blocks=blocks)


def data_note(record: JobRecord) -> str:
    """Which data the job read (a registered dataset's version) and the bad rows it skipped, and why."""
    lines = []
    for use in record.data:
        line = f"{use.role} data `{escape(use.dataset or use.name)}`"
        if use.skipped:
            line += (f": {use.skipped} bad row{'s' if use.skipped != 1 else ''} skipped ("
                     f"{escape('; '.join(use.skipped_rows))}{' …' if use.skipped > len(use.skipped_rows) else ''})")
        if use.dataset or use.skipped:
            lines.append(line)
    return "".join(f"\n{line}" for line in lines)


class SlackJobRenderer:
    def status_message(self, record: JobRecord) -> ChatMessage:
        lines = [headline(record)]
        if record.state == JobState.RUNNING and record.progress:
            lines.append(progress_bar(record))
        if record.output_model:
            lines.append(f"New model: `{record.output_model}`")
        blocks = [SectionBlock(text=MarkdownTextObject(text="\n".join(lines)))]
        context = f"asked by <@{record.requester}> · elapsed {duration(record.elapsed_seconds)} · trace {record.trace_id}"
        if record.estimate is not None and record.kind != "deploy":
            context += f" · estimate {record.estimate.summary()}"
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
        if record.approval == "pending" and not record.state.final:
            cost = f" ({record.estimate.summary()})" if record.estimate else ""
            why = f" {escape(record.message)}." if record.message else ""
            blocks.insert(1, SectionBlock(text=MarkdownTextObject(
                text=clip(f":raised_hand: Waiting for approval: up to {record.gpu_hours:g} GPU-hours{cost}.{why}", 3000))))
            blocks.append(ActionsBlock(elements=[
                ButtonElement(text="Approve", action_id=ActionId.APPROVE_JOB, value=record.id, style="primary"),
                ButtonElement(text="Reject", action_id=ActionId.REJECT_JOB, value=record.id, style="danger"),
            ]))
        elif not record.state.final:
            blocks.append(ActionsBlock(elements=[ButtonElement(
                text="Cancel", action_id=ActionId.CANCEL_JOB, value=record.id, style="danger",
            )]))
        elif record.state == JobState.COMPLETED and record.output_model:
            blocks.append(ActionsBlock(elements=[
                ButtonElement(text="Evaluate", action_id=ActionId.JOB_EVALUATE, value=record.output_model),
                ButtonElement(text="Register", action_id=ActionId.JOB_REGISTER, value=record.output_model),
                ButtonElement(text="Deploy", action_id=ActionId.JOB_DEPLOY, value=record.output_model),
                *([ButtonElement(text="Compare with base", action_id=ActionId.COMPARE_BASE, value=record.id)]
                  if record.kind == "finetune" else []),
            ]))
        return ChatMessage(text=f"{record.kind} {record.id}: {record.state}", blocks=[b.to_dict() for b in blocks])

    def thread_reply(self, record: JobRecord, event: JobEvent) -> ChatMessage | None:
        if event == JobEvent.STARTED:
            text = f"Started `{record.id}` (attempt {record.attempts})." + data_note(record)
        elif event == JobEvent.PROGRESS:
            text = progress_bar(record) or None
        elif event == JobEvent.APPROVED:
            text = f"Approved by <@{record.approved_by}>; `{record.id}` is queued."
        elif event == JobEvent.RETRYING:
            text = f"The worker running `{record.id}` stopped; retrying. Trace id {record.trace_id}."
        elif event == JobEvent.COMPLETED and record.kind == "deploy":
            return deployed_reply(record)
        elif event == JobEvent.COMPLETED and record.kind == "import":
            text = f"Imported into the catalog as `{record.output_model}`. Try it with `/fm try {record.output_model}`."
        elif event == JobEvent.COMPLETED:
            text = f"*Metrics* of `{record.output_model or record.model}` on the test data:\n{metrics_table(record.metrics)}"
            if record.samples:
                sample = record.samples[0]
                text += (f"\nSample: _{escape(str(sample.get('input', ''))[:200])}_ → predicted "
                         f"`{escape(str(sample.get('prediction'))[:200])}`, "
                         f"expected `{escape(str(sample.get('reference'))[:200])}`")
            if record.message:
                text += f"\n_{escape(record.message)}_"
            text += data_note(record)
        elif event == JobEvent.FAILED:
            text = f":x: `{record.id}` failed: {escape(record.error)}"
        elif event == JobEvent.APPROVAL_REMINDER:
            text = (f":hourglass: `{record.id}` still waits for an approver; it is rejected "
                    f"{_when(record.result.get('approval_expires_at'))} unless someone approves it.")
        elif event == JobEvent.ENDPOINT_EXPIRING:
            from bot.slack.views.costs import expiring_reply

            return expiring_reply(record.result.get("endpoint", ""), record.requester,
                                  _when(record.result.get("expires_at")), record.result.get("keep_hours", 8))
        elif event == JobEvent.ENDPOINT_EXPIRED:
            text = (f":wastebasket: Endpoint *{record.result.get('endpoint', '')}* reached the end of its time to live "
                    f"and was deleted" + (f"; it cost about ${record.actual_usd:,.2f}." if record.actual_usd else "."))
        elif event == JobEvent.CANCELED:
            text = f"`{record.id}` was canceled" + (f" ({escape(record.message)})." if record.message else ".")
        else:
            text = None
        if text is None:
            return None
        return ChatMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=clip(text, 3000))).to_dict()])

    def direct_message(self, record: JobRecord, event: JobEvent) -> ChatMessage | None:
        if event != JobEvent.ENDPOINT_IDLE:
            return None
        from bot.slack.views.costs import idle_message

        return idle_message(record.result.get("endpoint", ""), record.result.get("idle_hours", 0.0),
                            record.result.get("running_usd", 0.0), record.result.get("requests", 0))

    def attachments(self, record: JobRecord, event: JobEvent) -> list[FileAttachment]:
        if event != JobEvent.COMPLETED or len(record.loss_history) < 2:
            return []
        from bot.plots import loss_curve_png

        title = f"Training loss of {record.output_model or record.model}"
        return [FileAttachment(filename=f"{record.id}-loss.png", title=title,
                               content=loss_curve_png(record.loss_history, title))]
