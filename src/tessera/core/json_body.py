"""A bounded JSON object from another service's answer, or nothing."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["json_object"]


def json_object(content: bytes, *, max_bytes: int) -> dict[str, Any] | None:
    """``content`` parsed as a JSON object; ``None`` when it is longer than ``max_bytes``
    (checked before parsing), not JSON, or not an object."""
    if len(content) > max_bytes:
        return None
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
