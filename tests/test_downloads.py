"""Downloading uploads: the bearer token goes only to Slack's file host and never across a
redirect, a sign-in page is recognised, and the size limit holds while streaming."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.slack.files import download_upload
from handlers.errors import UserError
from tests.helpers import LocalServer
from tests.slack_standin import BOT_TOKEN, SlackStandIn


class Elsewhere:
    """A host that is not Slack (`localhost`, while Slack is 127.0.0.1): records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.server = LocalServer({"GET": self._csv})

    def _csv(self, request: BaseHTTPRequestHandler) -> None:
        self.seen.append(dict(request.headers.items()))
        body = b"text,label\nhi,1\n"
        request.send_response(200)
        request.send_header("Content-Type", "text/csv")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.server.port}/data.csv"


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    host = Elsewhere()
    yield host
    host.server.stop()


def test_a_slack_upload_downloads(slack_settings: Settings, slack: SlackStandIn, tmp_path: Path):
    file = slack.add_file("train.csv", b"text,label\nhi,1\n", "text/csv")
    path = download_upload(slack_settings, file, tmp_path)
    assert path.read_bytes() == b"text,label\nhi,1\n"


def test_token_is_never_sent_to_another_host(slack_settings: Settings, elsewhere: Elsewhere, tmp_path: Path):
    file = {"name": "train.csv", "size": 10, "url_private_download": elsewhere.url}
    with pytest.raises(UserError, match="train.csv: the download link points at localhost, not at Slack"):
        download_upload(slack_settings, file, tmp_path)
    assert elsewhere.seen == []


def test_token_is_not_carried_across_a_redirect(slack_settings: Settings, slack: SlackStandIn,
                                                elsewhere: Elsewhere, tmp_path: Path):
    redirect = f"{slack.base_url}/redirect?to={urllib.parse.quote(elsewhere.url, safe='')}"
    cdn = slack_settings.replace(slack_file_hosts="127.0.0.1,localhost")  # the redirect's host is allowed
    path = download_upload(cdn, {"name": "train.csv", "size": 10, "url_private_download": redirect}, tmp_path)
    assert path.read_bytes().startswith(b"text,label")
    assert len(elsewhere.seen) == 1
    assert "Authorization" not in elsewhere.seen[0]
    assert BOT_TOKEN not in str(elsewhere.seen[0])


def test_sign_in_page_instead_of_the_file_is_explained(slack_settings: Settings, slack: SlackStandIn,
                                                       tmp_path: Path):
    file = slack.add_file("train.jsonl", b'{"a": 1}\n')
    wrong_token = slack_settings.replace(slack_bot_token="xoxb-not-the-real-one")
    with pytest.raises(UserError) as refused:
        download_upload(wrong_token, file, tmp_path)
    assert "train.jsonl: Slack sent a sign-in page instead of the file" in str(refused.value)
    assert "files:read" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_size_limit_holds_while_streaming_even_when_the_declared_size_lies(slack_settings: Settings,
                                                                          slack: SlackStandIn, tmp_path: Path):
    limited = slack_settings.replace(fmbot_max_upload_mb=1)
    file = {**slack.add_file("big.jsonl", b'{"text": "x"}\n' * 100_000), "size": 100}
    with pytest.raises(UserError, match="big.jsonl is over the 1 MB limit"):
        download_upload(limited, file, tmp_path)
    assert list(tmp_path.iterdir()) == [], "the partial download is removed"


def test_declared_size_over_the_limit_is_refused_before_downloading(slack_settings: Settings,
                                                                     slack: SlackStandIn, tmp_path: Path):
    limited = slack_settings.replace(fmbot_max_upload_mb=1)
    file = slack.add_file("big.jsonl", b"x" * (2 * 1024 * 1024))
    with pytest.raises(UserError, match=r"big.jsonl is 2.0 MB; the limit is 1 MB"):
        download_upload(limited, file, tmp_path)
