"""An Envoy filesystem RDS file, read and written in its own style.

Envoy parses RDS files as proto JSON (YAML converted to JSON), which takes every field under its
proto name (``weighted_clusters``) or its lowerCamelCase JSON name (``weightedClusters``), as
control planes such as Consul write them. :class:`Spelling` reads either and writes new keys the
way the file already spells them, so an edit never turns a camelCase file into a mixed one. A JSON
file stays JSON (by its name, or by its text when it is JSON under a ``.yaml`` name, which Envoy
reads as YAML), with its indentation.

Envoy watches the file's directory and reloads when a file is moved onto the path, so every write
goes to a temporary file in the same directory, is fsynced, then renamed over the original. A
``flock`` on a side file serialises concurrent editors of one file. Errors never quote the file's
content (a spec could name any file the worker may read), only where the problem is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from activities.errors import RouteInvalid, RouteNotFound, RouteNotWritable

__all__ = ["SNAKE", "RdsFile", "RdsText", "Spelling", "version_of"]


# libyaml's safe loader and dumper when PyYAML was built with it (its wheels are): the same
# documents and errors (with their marks) as the pure-Python ones, in a sixth of the time, on the
# path from an approval to Envoy serving the new weights (two loads and a dump per change).
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# errno values that mean "this file system or directory will not take the write"
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_CAMEL_KEY = re.compile(r"^[a-z]+[A-Z][A-Za-z0-9]*$")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class Spelling:
    """How a document spells proto field names; reads both, writes new keys its own way."""

    camel: bool = False

    def key(self, name: str) -> str:
        """The spelling of ``name`` (given in snake_case) for a key this file does not have yet."""
        return _camel(name) if self.camel else name

    def get(self, obj: Mapping[str, Any], name: str, default: Any = None) -> Any:
        """``obj``'s field ``name`` (snake_case) under either spelling."""
        if name in obj:
            return obj[name]
        return obj.get(_camel(name), default)

    def has(self, obj: Mapping[str, Any], name: str) -> bool:
        """Whether ``obj`` has the field under either spelling."""
        return name in obj or _camel(name) in obj

    def put(self, obj: dict[str, Any], name: str, value: Any) -> None:
        """Set a field, under the spelling it already has, else the document's."""
        for key in (name, _camel(name)):
            if key in obj:
                obj[key] = value
                return
        obj[self.key(name)] = value

    def pop(self, obj: dict[str, Any], name: str) -> Any:
        """Remove a field under either spelling; its value, or None."""
        value = obj.pop(name, None)
        camel = obj.pop(_camel(name), None)
        return value if value is not None else camel


SNAKE = Spelling(camel=False)
"""Envoy's own spelling (its config dump)."""


def _spelling_of(document: Any) -> Spelling:
    """camelCase when the document's multi-word keys are mostly camelCase."""
    counts = {"snake": 0, "camel": 0}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "_" in key:
                    counts["snake"] += 1
                elif isinstance(key, str) and _CAMEL_KEY.match(key):
                    counts["camel"] += 1
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    return Spelling(camel=counts["camel"] > counts["snake"])


@dataclass(frozen=True)
class RdsText:
    """A file as read: its exact text (to put back), the parsed document, and its style."""

    text: str
    document: dict[str, Any]
    spelling: Spelling
    json_indent: int | None
    """None: YAML; 0: one-line JSON; else the JSON's indentation."""


class RdsFile:
    """The RDS file at ``path`` (symlinks resolved by the caller); ``label`` starts every error."""

    def __init__(self, path: Path, label: str, shown: str) -> None:
        self.path = path
        self.label = label
        self.shown = shown
        """The path as the spec gave it, for messages."""

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the side file's ``flock`` (one editor of the file at a time)."""
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        try:
            handle = open(lock_path, "a")  # noqa: SIM115 - held for the whole edit
        except FileNotFoundError:
            raise RouteNotFound(f"{self.label}: directory {self.path.parent} does not exist") from None
        except PermissionError as exc:
            raise RouteNotWritable(f"{self.label}: cannot lock {lock_path}: {exc.strerror}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> RdsText:
        """Read and parse the file; RouteNotFound / RouteInvalid saying where, never what."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            raise RouteNotFound(f"{self.label}: routes file {self.path} does not exist") from None
        except (PermissionError, IsADirectoryError) as exc:
            raise RouteInvalid(f"{self.label}: cannot read {self.path}: {exc}") from None
        is_json = self.path.suffix == ".json" or text.lstrip().startswith("{")
        try:
            document = json.loads(text) if is_json else yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
        except json.JSONDecodeError as exc:
            raise RouteInvalid(self._unparsable("JSON", exc.lineno, exc.colno)) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
            raise RouteInvalid(self._unparsable("YAML", line, column)) from None
        # YAML anchors load as one shared object: copy them apart, or editing one route's
        # weights would also edit every route that aliases it.
        document = _unshared(document)
        if not isinstance(document, dict) or not isinstance(document.get("resources"), list):
            raise RouteInvalid(f"{self.label}: {self.path} is not an RDS file (no top-level resources: list)")
        return RdsText(text, document, _spelling_of(document), _json_indent(text) if is_json else None)

    def _unparsable(self, kind: str, line: int | None, column: int | None) -> str:
        where = f" at line {line}, column {column}" if line is not None else ""
        # the parser's message quotes the offending line: a spec can name any file, so not here
        return f"{self.label}: {self.shown} is not valid {kind}{where}"

    def render(self, document: dict[str, Any], like: RdsText) -> str:
        """``document`` as text in the style of the file it was read from."""
        if like.json_indent is None:
            return yaml.dump(document, Dumper=_YAML_DUMPER, sort_keys=False, default_flow_style=False)
        return json.dumps(document, indent=like.json_indent or None) + "\n"

    def write(self, text: str) -> None:
        """Replace the file with ``text``: temp file in its directory, fsync, rename."""
        try:
            fd, temp_name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise RouteNotWritable(
                f"{self.label}: cannot write in {self.path.parent}: {exc.strerror}"
            ) from None
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(OSError):
                os.chmod(temp_name, self.path.stat().st_mode & 0o777)
            os.replace(temp_name, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            if isinstance(exc, OSError) and exc.errno in _NOT_WRITABLE:
                raise RouteNotWritable(f"{self.label}: cannot replace {self.path}: {exc.strerror}") from None
            raise


def _json_indent(text: str) -> int:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and len(stripped) < len(line):
            return len(line) - len(stripped)
    return 0


def _unshared(value: Any) -> Any:
    """A copy of a loaded document in which no dict or list appears twice."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def version_of(document: dict[str, Any]) -> str:
    """A ``version_info`` that follows the resources' content (same content, same version)."""
    body = json.dumps(document.get("resources"), sort_keys=True).encode()
    return "sluice-" + hashlib.sha256(body).hexdigest()[:16]
