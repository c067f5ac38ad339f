"""How costs look in Slack: `/fm costs`, and an endpoint's messages near its end or when nobody calls it."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from bot.slack.ids import ActionId
from bot.slack.limits import clip, cut
from handlers.costs import CostReport
from handlers.policy import mention
from workers.costs import money
from workers.notifier import ChatMessage

MAX_ROWS = 15


def _rows(spend: dict[str, float], who: Any) -> str:
    shown, more = cut(list(spend.items()), MAX_ROWS)
    lines = [f"• {who(name)} — {money(usd)}" for name, usd in shown] or ["• nothing yet"]
    if more:
        lines.append(f"and {more} more")
    return "\n".join(lines)


def costs_message(report: CostReport) -> dict[str, Any]:
    """The ephemeral answer to `/fm costs`."""
    budgets = "\n".join(f"• {b.scope} {mention(b.who)}: {money(b.used)} of {money(b.budget)}" for b in report.budgets)
    text = (f"*Costs in {report.month}* — yours: {money(report.yours)}\n" + (f"*Budgets*\n{budgets}\n" if budgets else "")
            + f"*By user*\n{_rows(report.users, mention)}\n*By channel*\n{_rows(report.channels, lambda c: f'<#{c}>')}")
    blocks = [SectionBlock(text=MarkdownTextObject(text=clip(text, 3000))).to_dict(),
              ContextBlock(elements=[MarkdownTextObject(text=clip(
                  f"Estimated, then actual once each job or endpoint ends. Prices: {report.price_source}, read "
                  f"{report.prices_read}.", 3000))]).to_dict()]
    return {"text": clip(text, 3000), "blocks": blocks}


def expiring_reply(endpoint: str, owner: str, expires: str, hours: float) -> ChatMessage:
    text = (f":alarm_clock: <@{owner}>, endpoint *{endpoint}* reaches the end of its time to live {expires} "
            "and will be deleted then.")
    blocks = [SectionBlock(text=MarkdownTextObject(text=clip(text, 3000))).to_dict(),
              ActionsBlock(elements=[
                  ButtonElement(text=f"Keep {hours:g} h more", action_id=ActionId.KEEP_ENDPOINT, value=endpoint,
                                style="primary"),
                  ButtonElement(text="Delete now", action_id=ActionId.DELETE_ENDPOINT, value=endpoint, style="danger"),
              ]).to_dict()]
    return ChatMessage(text=text, blocks=blocks)


def idle_message(endpoint: str, hours: float, running_usd: float, requests: int) -> ChatMessage:
    """The owner's DM about an endpoint nobody has called for `hours`."""
    cost = f"it has cost {money(running_usd)} so far" if running_usd else "it runs on this machine, at no cost, but holds its memory"
    text = (f":zzz: Endpoint *{endpoint}* has had no scoring request for {hours:g} h ({requests:,} in all); {cost}. "
            "Delete it if nobody needs it.")
    blocks = [SectionBlock(text=MarkdownTextObject(text=clip(text, 3000))).to_dict(),
              ActionsBlock(elements=[ButtonElement(text="Delete", action_id=ActionId.DELETE_ENDPOINT, value=endpoint,
                                                   style="danger")]).to_dict()]
    return ChatMessage(text=text, blocks=blocks)
