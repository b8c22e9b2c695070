"""The worker's policy on its own: outbound rules, routes directories, secrets, the settings.

No DNS is asked: names resolve through a resolver the test gives (a name pointing at the
metadata address stands for a hostile DNS record).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

from activities.errors import NotAllowed
from activities.outbound import GuardedAsyncTransport, GuardedTransport, HostRule, OutboundPolicy, tls_context
from activities.policy import WorkerPolicy
from worker.settings import Settings, SettingsError


def resolving(table: dict[str, list[str]]) -> OutboundPolicy:
    return OutboundPolicy(resolver=lambda host, port: table[host])


def rules(*entries: str) -> tuple[HostRule, ...]:
    return tuple(HostRule.parse(entry) for entry in entries)


# -- outbound ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://[::ffff:169.254.169.254]/",  # the IPv4 address, written as IPv6
        "http://2852039166/",  # 169.254.169.254 as one number: getaddrinfo reads it so
        "http://100.100.100.200/",
        "http://metadata/computeMetadata/v1/",
        "http://METADATA.google.internal./",
    ],
)
def test_metadata_and_link_local_are_refused_by_default(url: str) -> None:
    with pytest.raises(NotAllowed, match=r"verify\.url: .*SLUICE_ALLOWED_HOSTS"):
        OutboundPolicy().check("verify.url", url)


def test_a_name_that_resolves_to_the_metadata_address_is_refused() -> None:
    policy = resolving({"innocent.example": ["10.1.2.3", "169.254.169.254"]})
    with pytest.raises(NotAllowed, match=r"innocent.example \(169.254.169.254\)"):
        policy.check("verify.url", "http://innocent.example/")


def test_userinfo_is_refused_whatever_the_allowlist() -> None:
    policy = OutboundPolicy(rules("*", "0.0.0.0/0"))
    with pytest.raises(NotAllowed, match="credentials") as error:
        policy.check_url("router.admin", "http://admin:s3cret@127.0.0.1:9901/")
    assert "s3cret" not in str(error.value)


def test_the_allowlist_takes_globs_and_cidrs() -> None:
    table = {"prometheus.monitoring.svc": ["10.0.0.7"], "elsewhere.example": ["192.0.2.1"]}
    policy = OutboundPolicy(rules("*.monitoring.svc", "127.0.0.0/8"), resolver=lambda h, p: table[h])
    policy.check("a", "http://prometheus.monitoring.svc:9090/")
    policy.check("a", "http://127.0.0.1:9901/")
    with pytest.raises(NotAllowed, match=r"a: host elsewhere.example is not allowed .*SLUICE_ALLOWED_HOSTS"):
        policy.check("a", "http://elsewhere.example/")
    # a wildcard does not open the link-local range; an explicit CIDR inside it does
    with pytest.raises(NotAllowed):
        OutboundPolicy(rules("*", "0.0.0.0/0")).check("a", "http://169.254.10.1/")
    OutboundPolicy(rules("169.254.10.0/24")).check("a", "http://169.254.10.1/")
    named = OutboundPolicy(rules("metadata.google.internal"), resolver=lambda h, p: ["169.254.169.254"])
    named.check("a", "http://metadata.google.internal/")
    with pytest.raises(NotAllowed):
        OutboundPolicy(rules("169.254.10.0/24")).check("a", "http://169.254.169.254/")


@pytest.mark.parametrize("entry", ["", "http://x/", "10.0.0.0/33", "a b"])
def test_bad_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        HostRule.parse(entry)


async def test_the_transport_sends_to_the_address_it_checked() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sni = request.extensions.get("sni_hostname")
        seen.append((str(request.url), request.headers["host"], sni))
        return httpx.Response(200)

    answers = iter([["127.0.0.1"], ["169.254.169.254"]])  # a rebinding DNS
    policy = OutboundPolicy(resolver=lambda host, port: next(answers))
    transport = GuardedAsyncTransport(policy, "verify.url", httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://svc.example:8443/x")
        await client.get("https://svc.example:8443/y")  # checked once, sent to the same address
        with pytest.raises(NotAllowed):
            await client.get("https://other.example/")  # the rebinding answer is refused
    assert seen == [
        ("https://127.0.0.1:8443/x", "svc.example:8443", "svc.example"),
        ("https://127.0.0.1:8443/y", "svc.example:8443", "svc.example"),
    ]


async def test_a_name_that_does_not_resolve_is_unreachable_not_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    policy = OutboundPolicy(resolver=fail)
    policy.check("verify.url", "http://gone.example/")  # the requests will fail, counted
    answer = httpx.MockTransport(lambda request: httpx.Response(200))
    transport = GuardedAsyncTransport(policy, "verify.url", answer)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve gone\.example"):
            await client.get("http://gone.example/")


# -- routes files and secrets --------------------------------------------------------------------


def test_routes_files_resolve_symlinks_and_stay_inside(tmp_path: Path) -> None:
    managed, outside = tmp_path / "managed", tmp_path / "outside"
    managed.mkdir()
    outside.mkdir()
    (managed / "link").symlink_to(outside)
    policy = WorkerPolicy(routes_dirs=(managed,))
    assert policy.routes_file(str(managed / "rds.yaml")) == managed / "rds.yaml"
    for path in (managed / ".." / "outside" / "rds.yaml", managed / "link" / "rds.yaml", Path("/etc/x")):
        with pytest.raises(NotAllowed, match=r"router\.routesFile: .*SLUICE_ROUTES_DIRS"):
            policy.routes_file(str(path))
    with pytest.raises(NotAllowed, match="manages no routes files"):
        WorkerPolicy().routes_file(str(managed / "rds.yaml"))


def test_secrets_only_from_allowed_names_and_directories(tmp_path: Path) -> None:
    key = tmp_path / "temporal.key"
    policy = WorkerPolicy(
        secret_env=("PROM_*", "TEMPORAL_API_KEY"), secrets_dirs=(tmp_path,), protected_files=(key,)
    )
    environ = {"PROM_TOKEN": "t", "TEMPORAL_API_KEY": "k"}
    assert policy.secret_from_env("m", "PROM_TOKEN", environ) == "t"
    with pytest.raises(NotAllowed, match="worker's own Temporal credentials"):
        policy.secret_from_env("m", "TEMPORAL_API_KEY", environ)  # listed, and still refused
    with pytest.raises(NotAllowed, match=r"m\.bearerTokenEnv: .*SLUICE_SECRET_ENV"):
        policy.secret_from_env("m", "HOME", environ)
    assert policy.secret_file("m", str(tmp_path / "token")) == tmp_path / "token"
    with pytest.raises(NotAllowed, match="worker's own Temporal credentials"):
        policy.secret_file("m", str(key))
    with pytest.raises(NotAllowed, match=r"m\.bearerTokenFile: .*SLUICE_SECRETS_DIR"):
        policy.secret_file("m", str(tmp_path / ".." / "token"))


# -- settings ------------------------------------------------------------------------------------


def test_settings_build_the_policy(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("k")
    settings = Settings.from_env(
        {
            "SLUICE_ROUTES_DIRS": f"{tmp_path}{os.pathsep}{tmp_path}",
            "SLUICE_ALLOWED_HOSTS": "*.svc.cluster.local, 10.0.0.0/8",
            "SLUICE_SECRET_ENV": "PROM_TOKEN,GRAFANA_*",
            "SLUICE_SECRETS_DIR": str(tmp_path),
            "TEMPORAL_API_KEY_FILE": str(key),
        }
    )
    policy = settings.policy()
    assert policy.routes_dirs == (tmp_path.resolve(), tmp_path.resolve())
    assert [r.pattern for r in policy.outbound.allowed_hosts] == ["*.svc.cluster.local", "10.0.0.0/8"]
    assert policy.secret_env == ("PROM_TOKEN", "GRAFANA_*")
    assert policy.protected_files == (key.resolve(),)
    assert Settings.from_env({}).policy() == WorkerPolicy()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLUICE_ROUTES_DIRS", "/no/such/dir"),
        ("SLUICE_SECRETS_DIR", "/no/such/dir"),
        ("SLUICE_ALLOWED_HOSTS", "10.0.0.0/40"),
    ],
)
def test_bad_policy_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_ui_url_setting_is_checked_and_optional() -> None:
    assert Settings.from_env({}).ui_url is None
    assert Settings.from_env({"SLUICE_UI_URL": "https://temporal.example.com/"}).ui_url == (
        "https://temporal.example.com"
    )
    with pytest.raises(SettingsError, match="SLUICE_UI_URL: must be an http:// or https:// URL"):
        Settings.from_env({"SLUICE_UI_URL": "temporal.example.com"})


def test_every_guarded_transport_shares_one_tls_context() -> None:
    """Building a TLS context loads the CA bundle (tens of ms): one per worker, not per client."""
    policy = OutboundPolicy()
    blocking, non_blocking = (
        GuardedTransport(policy, "router.admin"),
        GuardedAsyncTransport(policy, "verify.url"),
    )
    assert isinstance(blocking.inner, httpx.HTTPTransport)
    assert isinstance(non_blocking.inner, httpx.AsyncHTTPTransport)
    contexts = {id(blocking.inner._pool._ssl_context), id(non_blocking.inner._pool._ssl_context)}
    assert contexts == {id(tls_context())}
    assert tls_context().verify_mode.name == "CERT_REQUIRED"  # still verifying, as httpx's default
