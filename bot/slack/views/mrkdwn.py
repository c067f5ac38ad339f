"""Text from users' files and jobs, made inert before it goes into a Slack message.

Slack reads `<!channel>`, `<@U…>` and `<https://…|label>` in mrkdwn as pings and links, and `&`,
`<`, `>` are its only control characters; escaping those three (Slack's own advice) keeps a cell
value, column or file name as the text it is, however it was crafted.
"""

from __future__ import annotations

_CONTROL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: object) -> str:
    return str(text).translate(_CONTROL)
