"""The configuration reference, generated from `Settings`: `fmbot config`, `deploy/.env.example`
and the README table all come from here, so a new setting is documented everywhere at once.

Regenerate the example after adding a setting: `fmbot config --env-example > deploy/.env.example`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from bot.settings import Settings

MASK = "********"


class SettingInfo(BaseModel):
    env: str
    default: str
    description: str
    secret: bool


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return value.as_posix()
    return str(value)


def settings_reference() -> list[SettingInfo]:
    """Each setting's environment variable, default and meaning, in declaration order."""
    return [
        SettingInfo(
            env=name.upper(),
            default=_text(field.default),
            description=field.description or "",
            secret=SecretStr in getattr(field.annotation, "__args__", (field.annotation,)),
        )
        for name, field in Settings.model_fields.items()
    ]


def mask_url(url: str) -> str:
    """`redis://user:password@host` -> `redis://user:********@host`."""
    return re.sub(r"(//[^:/@]*:)[^@]+@", rf"\g<1>{MASK}@", url)


def effective_config(settings: Settings) -> dict[str, str | None]:
    """What this process would run with; secrets say only whether they are set."""
    config: dict[str, str | None] = {}
    for info in settings_reference():
        value = getattr(settings, info.env.lower())
        if info.secret:
            config[info.env] = MASK if value is not None else None
        elif isinstance(value, str) and "://" in value:
            config[info.env] = mask_url(value)
        else:
            config[info.env] = _text(value) if value is not None else None
    return config


def env_example() -> str:
    lines = ["# fmbot settings: every variable, its default and what it means.",
             "# Generated from bot/settings.py by `fmbot config --env-example`; copy to `.env` and fill in.", ""]
    for info in settings_reference():
        lines.append(f"# {info.description}" + (" (secret)" if info.secret else ""))
        lines.append(f"{info.env}={info.default}" if info.default else f"# {info.env}=")
        lines.append("")
    return "\n".join(lines)


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{i.env}` | {f'`{i.default}`' if i.default else '—'} | {i.description} |"
             for i in settings_reference()]
    return "\n".join(rows)
