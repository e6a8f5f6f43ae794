"""Settings come from the environment, are validated once, and name the variable at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from contacts_cli.service.settings import Settings, SettingsError, is_loopback


def test_defaults_bind_loopback_on_8765() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8765)
    assert settings.shutdown_after == 600.0
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.snapshot_every == 500
    assert settings.database_url is None
    assert settings.api_token is None


def test_environment_is_read() -> None:
    settings = Settings.from_env({
        "DATABASE_URL": "postgresql://u@db:5433/contacts",
        "CONTACTS_DATA_DIR": "/tmp/contacts-data",
        "CONTACTS_HOST": "0.0.0.0",
        "CONTACTS_PORT": "9000",
        "CONTACTS_API_TOKEN": "s3cret",
        "CONTACTS_DEFAULT_REGION": "de",
        "CONTACTS_SHUTDOWN_AFTER": "30",
        "CONTACTS_MAX_BODY_BYTES": "2048",
        "CONTACTS_SNAPSHOT_EVERY": "100",
        "CONTACTS_DB_SCHEMA": "other",
    })
    assert settings.database_url == "postgresql://u@db:5433/contacts"
    assert settings.data_dir == Path("/tmp/contacts-data")
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.api_token == "s3cret"
    assert settings.default_region == "DE"
    assert settings.shutdown_after == 30.0
    assert settings.max_body_bytes == 2048
    assert settings.snapshot_every == 100
    assert settings.db_schema == "other"
    settings.check_bind()  # a token makes a public address acceptable


@pytest.mark.parametrize("value", ["never", "0", ""])
def test_passivation_can_be_switched_off(value: str) -> None:
    assert Settings.from_env({"CONTACTS_SHUTDOWN_AFTER": value}).shutdown_after is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CONTACTS_PORT": "http"}, "CONTACTS_PORT"),
        ({"CONTACTS_PORT": "70000"}, "CONTACTS_PORT"),
        ({"CONTACTS_SHUTDOWN_AFTER": "-5"}, "CONTACTS_SHUTDOWN_AFTER"),
        ({"CONTACTS_SHUTDOWN_AFTER": "nan"}, "CONTACTS_SHUTDOWN_AFTER"),
        ({"CONTACTS_DEFAULT_REGION": "Germany"}, "CONTACTS_DEFAULT_REGION"),
        ({"CONTACTS_MAX_BODY_BYTES": "0"}, "CONTACTS_MAX_BODY_BYTES"),
        ({"CONTACTS_API_TOKEN": "  "}, "CONTACTS_API_TOKEN"),
        ({"CONTACTS_DB_SCHEMA": "Robert'); DROP TABLE"}, "CONTACTS_DB_SCHEMA"),
        ({"CONTACTS_QUERY_TIMEOUT": "inf"}, "CONTACTS_QUERY_TIMEOUT"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"CONTACTS_PORT": "9000"}, port=9100, host=None)
    assert settings.port == 9100
    assert settings.host == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org", "::"])
def test_public_bind_without_token_is_refused(host: str) -> None:
    with pytest.raises(SettingsError, match="CONTACTS_API_TOKEN"):
        Settings(host=host).check_bind()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    Settings(host=host).check_bind()
