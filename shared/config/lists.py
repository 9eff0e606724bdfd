"""List settings as the environment writes them: comma-separated text, or a JSON list."""

from __future__ import annotations

import json


def split_list(value: object) -> object:
    """Lists arrive from the environment as comma-separated text (or a JSON list)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value
