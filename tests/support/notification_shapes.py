"""Checks of the documented shapes of the payloads sluicegate sends, written out from the specs:

- Slack incoming webhooks (https://api.slack.com/messaging/webhooks, Block Kit reference): a
  ``text`` string and up to 50 ``blocks``; a header's ``plain_text`` is at most 150 characters, a
  section's text at most 3000 and its ``fields`` at most 10 of at most 2000 each, a context's
  ``elements`` at most 10; ``mrkdwn`` escapes ``&``, ``<`` and ``>`` (``<`` only opens a link).
- CloudEvents 1.0 (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md) in the
  JSON event format, structured mode: the required attributes ``specversion`` (``"1.0"``),
  ``id``, ``source`` (a non-empty URI-reference) and ``type`` (non-empty strings); attribute
  names of lower-case letters and digits; ``time`` an RFC 3339 timestamp; content type
  ``application/cloudevents+json``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

__all__ = ["check_cloudevent", "check_slack"]

_TEXT_TYPES = {"mrkdwn", "plain_text"}
_BLOCK_KEYS = {
    "header": {"type", "text", "block_id"},
    "section": {"type", "text", "fields", "accessory", "block_id"},
    "context": {"type", "elements", "block_id"},
    "divider": {"type", "block_id"},
}


def _check_text(obj: Any, limit: int, where: str) -> None:
    assert isinstance(obj, dict), f"{where}: a text object, got {obj!r}"
    assert obj.get("type") in _TEXT_TYPES, f"{where}.type: {obj.get('type')!r}"
    text = obj.get("text")
    assert isinstance(text, str) and 0 < len(text) <= limit, f"{where}.text: {len(str(text))} characters"
    assert set(obj) <= {"type", "text", "emoji", "verbatim"}, f"{where}: unknown keys {set(obj)}"
    if obj["type"] == "mrkdwn":
        for match in re.finditer(r"<", text):
            assert text.startswith("<http", match.start()), f"{where}: unescaped '<' in {text!r}"
        assert ">" not in re.sub(r"<http[^>|]*\|[^>]*>", "", text), f"{where}: unescaped '>' in {text!r}"
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), f"{where}: unescaped '&' in {text!r}"


def check_slack(body: Any) -> None:
    """``body`` is a valid incoming-webhook message with text and blocks."""
    assert isinstance(body, dict) and set(body) <= {"text", "blocks"}, body
    assert isinstance(body.get("text"), str) and 0 < len(body["text"]) <= 40_000
    blocks = body.get("blocks")
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        kind = block.get("type")
        assert kind in _BLOCK_KEYS, f"{where}.type: {kind!r}"
        assert set(block) <= _BLOCK_KEYS[kind], f"{where}: unknown keys {set(block) - _BLOCK_KEYS[kind]}"
        if kind == "header":
            _check_text(block["text"], 150, f"{where}.text")
            assert block["text"]["type"] == "plain_text"
        elif kind == "section":
            assert "text" in block or "fields" in block, where
            if "text" in block:
                _check_text(block["text"], 3000, f"{where}.text")
            fields = block.get("fields", [])
            assert isinstance(fields, list) and len(fields) <= 10
            for number, field in enumerate(fields):
                _check_text(field, 2000, f"{where}.fields[{number}]")
        elif kind == "context":
            elements = block["elements"]
            assert isinstance(elements, list) and 0 < len(elements) <= 10
            for number, element in enumerate(elements):
                _check_text(element, 3000, f"{where}.elements[{number}]")


def check_cloudevent(body: Any, content_type: str) -> None:
    """``body`` is a CloudEvents 1.0 event in structured JSON mode."""
    assert content_type.split(";")[0].strip() == "application/cloudevents+json", content_type
    assert isinstance(body, dict), body
    for name in body:
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), f"attribute name {name!r}"
    assert body.get("specversion") == "1.0"
    for name in ("id", "source", "type"):
        assert isinstance(body.get(name), str) and body[name], f"{name}: required non-empty string"
    assert not re.search(r"\s", body["source"]), "source: a URI-reference has no whitespace"
    if "time" in body:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", body["time"])
        datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
    for name in ("subject", "datacontenttype", "dataschema"):
        if name in body:
            assert isinstance(body[name], str) and body[name], name
    assert not ("data" in body and "data_base64" in body)
