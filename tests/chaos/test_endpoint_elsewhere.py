"""Nothing left running: a local endpoint deployed by a worker on another host (its own hostname
and process namespace, as a worker container beside the bot's) is stopped there when the bot
deletes it, not merely forgotten while it goes on serving with a valid key."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from bot.bootstrap import build_runtime
from handlers.deploy import DeployRequest, delete_endpoint, start_deploy
from platforms.base import DeploySpec
from tests.helpers import final_record, ROOT, settings_env, wait_until

WORKER_HOST = "fmbot-worker-host"


def unshare_available() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--uts", "--mount-proc", "true"],
                          capture_output=True).returncode == 0


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url.removesuffix("/score") + "/health", timeout=3) as response:
            return response.status
    except (urllib.error.URLError, OSError):
        return None


@pytest.mark.skipif(not unshare_available(), reason="needs unshare(1) with pid and uts namespaces (root)")
def test_deleting_an_endpoint_served_on_another_host_stops_it_there(slack_settings, slack, tiny_model, tmp_path):
    settings = slack_settings.replace(slack_bot_token=None)
    rt = build_runtime(settings, slack=False)
    log = (tmp_path / "worker.log").open("wb")
    command = f"hostname {WORKER_HOST} && exec {sys.executable} -m bot.cli worker"
    worker = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--uts", "--mount-proc", "sh", "-c", command],
                              env=settings_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        record = start_deploy(rt, DeployRequest(spec=DeploySpec(model=tiny_model, endpoint="ep-elsewhere"), requester="U0USER"))
        done = final_record(rt.ledger, record.id, timeout=180,
                          about=lambda: (tmp_path / "worker.log").read_text()[-3000:])
        assert done.state == "completed", done.error
        info = rt.platform.get_endpoint("ep-elsewhere")
        assert info.host == WORKER_HOST and health(info.url) == 200
        deleted = delete_endpoint(rt, "ep-elsewhere", "U0USER")
        assert deleted.state == "stopped"
        assert health(info.url) is None, "the endpoint stopped serving where it ran"
        assert rt.platform.list_endpoints() == []
    finally:
        worker.kill()  # unshare's --kill-child takes the worker's namespace, endpoint and all, with it
        worker.wait(timeout=30)
        log.close()
