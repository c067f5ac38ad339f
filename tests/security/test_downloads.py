"""Downloads: only https (plain http only where the configured API is, as in these tests), a
redirect only to an allowed host and never with the token, and one time limit for the whole body."""

from __future__ import annotations

import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot import downloads
from bot.slack.files import download_upload
from handlers.errors import UserError
from tests.test_downloads import Elsewhere, elsewhere  # noqa: F401  (a host that is not Slack)


def test_a_redirect_to_a_host_that_is_not_allowed_is_not_followed(slack_settings, slack, elsewhere, tmp_path):
    redirect = f"{slack.base_url}/redirect?to={urllib.parse.quote(elsewhere.url, safe='')}"
    with pytest.raises(UserError, match="points at localhost, not at Slack"):
        download_upload(slack_settings, {"name": "train.csv", "size": 10, "url_private_download": redirect}, tmp_path)
    assert elsewhere.seen == [], "the redirect target was fetched"


def test_only_https_links_are_fetched_in_production(slack_settings, slack, tmp_path):
    production = slack_settings.replace(slack_api_url="https://slack.com/api/", slack_file_hosts="127.0.0.1")
    file = slack.add_file("train.csv", b"text,label\nhi,1\n", "text/csv")
    with pytest.raises(UserError, match=r"is http://, not https://"):
        download_upload(production, file, tmp_path)
    assert not any(c.method == "files" for c in slack.calls)


class Trickle:
    """A file host that sends one byte every 0.2 s: no single read ever times out."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(100000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_trickling_download_stops_at_the_total_time_limit(slack_settings, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(downloads, "DOWNLOAD_SECONDS", 2.0)
    host = Trickle()
    try:
        url = f"http://127.0.0.1:{host.server.server_address[1]}/files-pri/T1-F1/train.csv"
        started = time.monotonic()
        with pytest.raises(UserError, match="took over 2 s to download"):
            download_upload(slack_settings, {"name": "train.csv", "size": 10, "url_private_download": url}, tmp_path)
        assert time.monotonic() - started < 6
        assert not list(tmp_path.iterdir()), "the partial file was kept"
    finally:
        host.server.shutdown()
        host.server.server_close()
