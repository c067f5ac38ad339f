"""The App Home tab: the user's running and recent jobs, and the endpoints they can use."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack.ids import ActionId
from bot.slack.limits import cut
from bot.slack.views.jobs import headline, progress_bar
from bot.slack.views.mrkdwn import escape
from handlers.costs import CostReport
from workers.compare import Leaderboard
from workers.costs import money
from workers.ledger import JobRecord

MAX_JOBS = 20
MAX_ENDPOINTS = 20
BOARD_TOP = 3


def thread_link(record: JobRecord) -> str:
    target = record.reply_to
    if target is None or target.thread_ts is None:
        return ""
    return f" · <https://slack.com/archives/{target.channel}/p{target.thread_ts.replace('.', '')}|thread>"


def board_line(board: Leaderboard) -> str:
    top = " · ".join(f"{i}. `{escape(e.model)}` {e.metrics[board.primary]:.3f}"
                     for i, e in enumerate(board.entries[:BOARD_TOP], start=1))
    return (f"*{board.task}* on `{escape(board.dataset_name)}` ({len(board.entries)} results, {board.primary}): "
            f"{top}\n`/fm leaderboard {board.task} {board.dataset}`")


def home_view(records: list[JobRecord], endpoints: list[Any], report: CostReport | None = None,
              boards: list[Leaderboard] = ()) -> dict[str, Any]:
    blocks: list[Any] = [HeaderBlock(text="Your jobs")]
    shown, more = cut(records, MAX_JOBS)
    if not shown:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="No jobs yet. Start one with `/fm finetune`.")))
    for record in shown:
        text = headline(record) + thread_link(record)
        if not record.state.final and record.progress:
            text += "\n" + progress_bar(record)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text[:3000])))
    if more:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"and {more} more; see `/fm jobs`")]))
    blocks += [DividerBlock(), HeaderBlock(text="Endpoints")]
    shown_endpoints, more = cut(endpoints, MAX_ENDPOINTS)
    if not shown_endpoints:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="No endpoints. Deploy one with `/fm deploy`.")))
    for endpoint in shown_endpoints:
        blocks.append(SectionBlock(
            text=MarkdownTextObject(text=f"*{endpoint.name}* · `{endpoint.model}` · {endpoint.state}\n{endpoint.url}"),
            accessory=ButtonElement(text="Delete", action_id=ActionId.DELETE_ENDPOINT, value=endpoint.name,
                                    style="danger"),
        ))
    if more:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"and {more} more; see `/fm endpoints`")]))
    if report is not None:
        budgets = "".join(f"\n• {b.scope} budget: {money(b.used)} of {money(b.budget)}" for b in report.budgets)
        blocks += [DividerBlock(), HeaderBlock(text="Your costs this month"), SectionBlock(text=MarkdownTextObject(
            text=f"{money(report.yours)} in {report.month}{budgets}\nMore with `/fm costs`."))]
    if boards:
        blocks += [DividerBlock(), HeaderBlock(text="Leaderboards")]
        blocks += [SectionBlock(text=MarkdownTextObject(text=board_line(board)[:3000])) for board in boards]
    return View(type="home", blocks=blocks).to_dict()
