"""Microsoft Teams: fmbot's second surface, on the Microsoft 365 Agents SDK (`pip install fmbot[teams]`).

An adapter over the same handlers, queue, ledger and platforms that serve Slack: messages and
Adaptive Card actions come in at `/api/messages`, typed handler results go out as Adaptive Cards.
Nothing outside `bot/` imports this package.
"""
