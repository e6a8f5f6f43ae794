"""``contacts serve --certfile/--keyfile`` serves HTTPS (a self-signed certificate made with
openssl for 127.0.0.1); settings refuse a missing or mismatched pair before binding."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contacts_cli.service.settings import Settings, SettingsError
from tests.accounts.conftest import Certificate, basic
from tests.cli.conftest import Env, free_port, start_server, stop_server
from tests.conftest import drop_schemas, unique_schema


@pytest.fixture
def tls_env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    schema = unique_schema("tls")
    yield Env(vars={"DATABASE_URL": database_url, "CONTACTS_DB_SCHEMA": schema,
                    "CONTACTS_DATA_DIR": str(tmp_path), "NO_COLOR": "1", "CONTACTS_URL": ""},
              data_dir=tmp_path, schema=schema, database_url=database_url)
    asyncio.run(drop_schemas(database_url, [schema]))


@pytest.mark.slow
def test_serve_speaks_https_and_basic_works_over_it(tls_env: Env,
                                                    certificate: Certificate) -> None:
    server = start_server(tls_env, args=("--certfile", str(certificate.certfile),
                                         "--keyfile", str(certificate.keyfile)))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        trust = {"SSL_CERT_FILE": str(certificate.certfile)}
        added = tls_env.run("user", "add", "tia", mode="client", server=server.url,
                            stdin="tia's password\n", extra_env=trust)
        assert added.code == 0, added.stderr
        context = ssl.create_default_context(cafile=str(certificate.certfile))
        with httpx.Client(base_url=server.url, verify=context, timeout=30) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            mine = client.get("/api/tia/contacts", headers=basic("tia", "tia's password"))
            assert mine.status_code == 200
            wrong = client.get("/api/tia/contacts", headers=basic("tia", "not it"))
            assert wrong.status_code == 401
        with pytest.raises(httpx.ConnectError):  # the certificate is not trusted by default
            httpx.get(server.url + "/healthz", timeout=30)
        with pytest.raises(httpx.HTTPError):  # and plain HTTP is not served on that port
            httpx.get(server.url.replace("https://", "http://") + "/healthz", timeout=30)
    finally:
        stop_server(server)


def test_serve_refuses_a_certificate_without_its_key(tls_env: Env,
                                                     certificate: Certificate) -> None:
    proc = tls_env.run("serve", "--port", str(free_port()), "--certfile",
                       str(certificate.certfile), mode=None)
    assert proc.code == 2
    assert "CONTACTS_TLS_CERTFILE and CONTACTS_TLS_KEYFILE go together" in proc.stderr


def test_tls_or_a_token_allows_a_non_loopback_address(certificate: Certificate) -> None:
    with pytest.raises(SettingsError, match="without CONTACTS_API_TOKEN or HTTPS"):
        Settings(host="0.0.0.0").check_bind()
    Settings(host="0.0.0.0", api_token="t").check_bind()
    Settings(host="0.0.0.0", tls_certfile=certificate.certfile,
             tls_keyfile=certificate.keyfile).check_bind()


def test_a_bad_certificate_or_key_is_named_before_binding(certificate: Certificate,
                                                          tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(SettingsError, match="CONTACTS_TLS_KEYFILE: no such file"):
        Settings(tls_certfile=certificate.certfile, tls_keyfile=missing).check_bind()
    with pytest.raises(SettingsError, match="cannot load the certificate"):
        Settings(tls_certfile=certificate.certfile,
                 tls_keyfile=certificate.certfile).check_bind()
    with pytest.raises(SettingsError, match="go together"):
        Settings(tls_keyfile=certificate.keyfile)


def test_the_new_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "CONTACTS_TLS_CERTFILE": str(tmp_path / "c.pem"),
        "CONTACTS_TLS_KEYFILE": str(tmp_path / "k.pem"),
        "CONTACTS_AUTH_CACHE_SECONDS": "0",
        "CONTACTS_LOGIN_FAILURES_PER_USER": "3",
        "CONTACTS_LOGIN_FAILURES_PER_ADDRESS": "7",
        "CONTACTS_LOGIN_WINDOW": "90",
    })
    assert settings.tls and settings.tls_keyfile == tmp_path / "k.pem"
    assert settings.auth_cache_seconds == 0
    assert (settings.login_failures_per_user, settings.login_failures_per_address,
            settings.login_window) == (3, 7, 90.0)
    for var, value, message in [
        ("CONTACTS_LOGIN_FAILURES_PER_USER", "0", "at least 1"),
        ("CONTACTS_LOGIN_WINDOW", "-1", "positive seconds"),
        ("CONTACTS_AUTH_CACHE_SECONDS", "-5", r"0 \(no cache\) or positive"),
    ]:
        with pytest.raises(SettingsError, match=f"{var} must be.*{message}"):
            Settings.from_env({var: value})
