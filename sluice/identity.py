"""The matching rule of ``sluice audit``: does a client identity back the ``by`` a sender claimed?

Temporal records, with every signal, update and start, the identity the *client* set (SDK default
``<process id>@<host>``, the ``temporal`` CLI's ``temporal-cli:<user>@<host>``, or ``--identity``).
The rule compares the person each names: no mapping table, lowercase, the user part before ``@``.
"""

from __future__ import annotations

import re

__all__ = ["claimed_user", "identity_user", "is_mismatch"]

_PROCESS_ID = re.compile(r"^\d+$")
_COMMON_NAME = re.compile(r"(?:^|,)\s*CN=([^,]+)", re.IGNORECASE)


def identity_user(identity: str) -> str | None:
    """The person a client identity names, lowercased, or None when it names nobody.

    ``temporal-cli:alice@laptop`` → ``alice`` (a tool prefix before ``:`` is dropped), ``alice@host``
    → ``alice``, ``CN=alice,OU=sre`` → ``alice`` (a certificate subject), ``alice`` → ``alice``.
    The SDKs' default identity ``<process id>@<host>`` names nobody: None.
    """
    text = identity.strip()
    prefix, colon, rest = text.partition(":")
    if colon and rest and "@" not in prefix and "=" not in prefix:
        text = rest
    common_name = _COMMON_NAME.search(text)
    if common_name:
        text = common_name.group(1)
    user = text.split("@", 1)[0].strip().lower()
    return None if not user or _PROCESS_ID.match(user) else user


def claimed_user(by: str) -> str:
    """The name a claimed ``by`` is compared by: lowercased, ``alice@example.com`` → ``alice``."""
    return by.strip().split("@", 1)[0].strip().lower()


def is_mismatch(by: str, identity: str) -> bool:
    """A claim the identity does not back: ``by`` names someone and the identity names someone
    else, or nobody. Nothing claimed (a cancel, a traffic change): never a mismatch."""
    claimed = claimed_user(by)
    return bool(claimed) and identity_user(identity) != claimed
