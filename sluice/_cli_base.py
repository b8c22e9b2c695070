"""What every ``sluice`` command shares: the typer app's command class, options, consoles, the
one-line error, connecting to Temporal. The commands live in :mod:`sluice.cli` and
:mod:`sluice._cli_rollouts`."""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from temporalio.client import Client
from typer.core import TyperCommand, TyperGroup, TyperOption

from worker.client import connect
from worker.settings import Settings, SettingsError

__all__ = [
    "Address",
    "By",
    "CliError",
    "Namespace",
    "Output",
    "OutputFormat",
    "RolloutId",
    "SluiceTyper",
    "TaskQueue",
    "connect_client",
    "default_by",
    "make_console",
    "print_json",
    "run",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
PIPED_WIDTH = 200
"""Columns when stdout is not a terminal: a pipe or a file gets whole lines, not 80-column ones."""


class CliError(Exception):
    """Printed as one line on stderr; the process exits 2."""


class _NoBoolPlaceholder:
    """Flags take no value: show none (typer would print ``<bool>`` beside ``--full``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
                param.metavar = ""
        return params


class SluiceCommand(_NoBoolPlaceholder, TyperCommand):
    """Every ``sluice`` command (the app's default, see :class:`SluiceTyper`)."""


class SluiceGroup(_NoBoolPlaceholder, TyperGroup):
    """``sluice`` itself (``--version``, completion, ``--help``)."""


class SluiceTyper(typer.Typer):
    """A Typer whose commands are :class:`SluiceCommand` unless told otherwise."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", SluiceCommand)
        decorator: Callable[[F], F] = super().command(*args, **kwargs)
        return decorator


class OutputFormat(StrEnum):
    """``--output``: ``text`` for people, ``json`` for machines."""

    text = "text"
    json = "json"


Address = Annotated[
    str, typer.Option(envvar="TEMPORAL_ADDRESS", metavar="HOST:PORT", help="Temporal frontend host:port.")
]
Namespace = Annotated[
    str, typer.Option(envvar="TEMPORAL_NAMESPACE", metavar="NAME", help="Temporal namespace.")
]
TaskQueue = Annotated[
    str, typer.Option(envvar="TEMPORAL_TASK_QUEUE", metavar="NAME", help="Task queue the workers poll.")
]
By = Annotated[
    str,
    typer.Option(
        metavar="NAME", help="Who acts (recorded in the rollout's audit trail). Default: your user name."
    ),
]
RolloutId = Annotated[
    str,
    typer.Argument(
        metavar="ROLLOUT",
        help="Workflow id (rollout-default-reviews), or a service name: its one running rollout.",
        show_default=False,
    ),
]
Output = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text (for people) or json (for machines).")
]


def make_console(stderr: bool = False) -> Console:
    """A console that wraps at the terminal's width, and not at all into a pipe or a file (tables
    are laid out in ``COLUMNS`` or :data:`PIPED_WIDTH` columns there)."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, soft_wrap=stderr)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else PIPED_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=True)


def print_json(data: Any) -> None:
    """JSON on stdout, indented, nothing else."""
    print(json.dumps(data, indent=2))


def run(coroutine: Awaitable[T]) -> T:
    """Run one command's coroutine."""
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def default_by() -> str:
    """The local user name (``--by``'s default)."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


async def connect_client(address: str, namespace: str) -> Client:
    """A client that identifies as ``sluice:<user>@<host>``; a :class:`CliError` when it cannot."""
    try:
        settings = dataclasses.replace(Settings.from_env(), address=address, namespace=namespace)
        # Temporal records this with every action; `sluice audit` compares it with the claimed --by.
        return await connect(settings, identity=f"sluice:{default_by()}@{socket.gethostname()}")
    except SettingsError as error:
        raise CliError(str(error)) from None
    except RuntimeError as error:
        raise CliError(f"cannot reach Temporal at {address}: {error} (is `sluice dev` running?)") from None
