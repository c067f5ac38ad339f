"""Render a job card to PNG the way Teams draws it, for the README (docs/teams-job-card.png).

The card is built by fmbot's own view (`bot/teams/views/jobs.py`) from a sample running job and
drawn by Microsoft's Adaptive Cards renderer (npm `adaptivecards`) in headless Chromium:

    npm install --prefix /tmp/acrender adaptivecards@3
    apt-get install -y chromium
    python deploy/teams/render_job_card.py /tmp/acrender/node_modules/adaptivecards/dist/adaptivecards.min.js
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.teams.views.jobs import status_card
from platforms.base import JobState, Progress
from workers.ledger import JobRecord

ROOT = Path(__file__).resolve().parents[2]
HOST_CONFIG = {
    "fontFamily": "Segoe UI, Helvetica Neue, Arial, sans-serif",
    "containerStyles": {
        "default": {"backgroundColor": "#FFFFFF", "foregroundColors": {
            "default": {"default": "#242424", "subtle": "#616161"}, "attention": {"default": "#C4314B"},
            "good": {"default": "#237B4B"}, "warning": {"default": "#835C00"}}},
        "emphasis": {"backgroundColor": "#E0E0E0"},
        "good": {"backgroundColor": "#5B5FC7"},
    },
    "actions": {"maxActions": 6, "buttonSpacing": 8, "actionsOrientation": "horizontal",
                "actionAlignment": "left", "spacing": "default"},
}


def sample_card() -> dict:
    started = datetime.now(UTC) - timedelta(minutes=4, seconds=12)
    record = JobRecord(id="ft-1a2b3c4d", kind="finetune", model="all-MiniLM-L6-v2:1", task="text-classification",
                       spec={}, requester="aaaaaaaa-0000-4000-8000-000000000001", state=JobState.RUNNING,
                       progress=Progress(step=130, total=250, loss=0.41), created_at=started, started_at=started,
                       trace_id="3be05e8c48fa3729")
    return status_card(record, "Alice Example")


def main(renderer: str, out: Path) -> None:
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<style>body {{ margin: 0; background: #F5F5F5; }} #card {{ width: 440px; margin: 16px; background: #fff;
border-radius: 6px; box-shadow: 0 1px 3px rgba(0,0,0,.2); padding: 4px; }}
.ac-pushButton {{ border: 1px solid #D1D1D1; background: #fff; border-radius: 4px; padding: 6px 14px;
font: 600 14px Segoe UI, Arial, sans-serif; }} .ac-pushButton.style-destructive {{ color: #C4314B; }}</style>
<script src="file://{renderer}"></script></head><body><div id="card"></div><script>
const card = new AdaptiveCards.AdaptiveCard();
card.hostConfig = new AdaptiveCards.HostConfig({json.dumps(HOST_CONFIG)});
card.parse({json.dumps(sample_card())});
document.getElementById("card").appendChild(card.render());
</script></body></html>"""
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "card.html"
        html.write_text(page)
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={out}", "--window-size=472,262", "--force-device-scale-factor=2",
                        f"file://{html}"], check=True, capture_output=True)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "teams-job-card.png")
