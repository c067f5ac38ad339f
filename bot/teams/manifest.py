"""The Teams app package: manifest.json (from the command registry) and the two icons.

`deploy/teams/manifest.json` is this manifest with a placeholder app id, kept equal by a test;
`python -m bot.teams.manifest APP_ID [fmbot-teams.zip]` writes the package to upload in Teams
(Apps → Manage your apps → Upload an app) with the Azure Bot's app id filled in.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from handlers.registry import COMMANDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "teams"
PLACEHOLDER_APP_ID = "00000000-0000-0000-0000-000000000000"
SCHEMA = "https://developer.microsoft.com/json-schemas/teams/v1.19/MicrosoftTeams.schema.json"
MAX_COMMANDS = 10  # per command list, the manifest schema's limit
# The commands offered in Teams' command menu, most used first (the schema allows ten).
MENU = ("help", "search", "card", "try", "finetune", "evaluate", "deploy", "jobs", "status", "cancel")


def build_manifest(app_id: str = PLACEHOLDER_APP_ID, version: str = "0.1.0") -> dict[str, Any]:
    commands = [{"title": COMMANDS[name].name, "description": COMMANDS[name].summary[:128]}
                for name in MENU[:MAX_COMMANDS]]
    return {
        "$schema": SCHEMA,
        "manifestVersion": "1.19",
        "version": version,
        "id": app_id,
        "developer": {"name": "fmbot", "websiteUrl": "https://fmbot.invalid", "privacyUrl": "https://fmbot.invalid/privacy",
                      "termsOfUseUrl": "https://fmbot.invalid/terms"},
        "name": {"short": "fmbot", "full": "fmbot: foundation models from chat"},
        "description": {
            "short": "Search, try, evaluate, fine-tune and deploy foundation models",
            "full": "fmbot runs the whole life of a foundation model from chat: find it in the catalog, try it, "
                    "evaluate it on your data, fine-tune it, deploy it to an endpoint. Long work runs on workers "
                    "and reports back on one card per job.",
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#2F5AA8",
        "bots": [{
            "botId": app_id,
            "scopes": ["personal", "team", "groupChat"],
            "supportsFiles": True,
            "isNotificationOnly": False,
            "commandLists": [{"scopes": ["personal", "team", "groupChat"], "commands": commands}],
        }],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }


def write_package(app_id: str, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as package:
        package.writestr("manifest.json", json.dumps(build_manifest(app_id), indent=2) + "\n")
        for icon in ("color.png", "outline.png"):
            package.write(DEPLOY / icon, icon)
    return target


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bot.teams.manifest APP_ID [fmbot-teams.zip]")
    print(write_package(sys.argv[1], Path(sys.argv[2] if len(sys.argv) > 2 else "fmbot-teams.zip")))
