from ipaddress import ip_address

import pytest

from api.settings import PLACEHOLDER_SECRET, InsecureSettingsError, Settings


@pytest.mark.parametrize("secret", [PLACEHOLDER_SECRET, "", "short"])
def test_prod_refuses_missing_or_placeholder_secret(secret: str) -> None:
    with pytest.raises(InsecureSettingsError, match="SECRET_KEY"):
        Settings(env="prod", secret_key=secret).check_secure()


def test_prod_accepts_a_real_secret_and_dev_accepts_the_placeholder() -> None:
    Settings(env="prod", secret_key="x" * 48).check_secure()
    Settings(env="dev").check_secure()


def test_prod_keeps_introspection_for_partners_and_turns_the_ide_off() -> None:
    prod = Settings(env="prod", secret_key="x" * 48)
    assert prod.introspection_enabled and not prod.ide_enabled
    assert not Settings(env="prod", secret_key="x" * 48, graphql_introspection=False).introspection_enabled
    assert Settings(env="dev").introspection_enabled


PROD = {"env": "prod", "secret_key": "x" * 48}


def test_prod_needs_a_shared_redis() -> None:
    with pytest.raises(InsecureSettingsError, match="REDIS_URL"):
        Settings(**PROD, public_url="https://herald.example.com").check_production()


def test_prod_needs_an_explicit_https_public_url() -> None:
    with pytest.raises(InsecureSettingsError, match="PUBLIC_URL must be set"):
        Settings(**PROD, redis_url="redis://h:6379/0").check_production()
    with pytest.raises(InsecureSettingsError, match=r"PUBLIC_URL must be https.*ALLOW_HTTP_PUBLIC_URL"):
        Settings(**PROD, redis_url="redis://h:6379/0", public_url="http://herald.example.com").check_production()
    Settings(
        **PROD, redis_url="redis://h:6379/0", public_url="http://herald.example.com", allow_http_public_url=True
    ).check_production()
    Settings(**PROD, redis_url="redis://h:6379/0", public_url="https://herald.example.com").check_production()
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        Settings(**PROD, public_url="herald.example.com")


def test_dev_starts_on_embedded_defaults() -> None:
    Settings(env="dev").check_production()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("REDIS_URL", "redis://h:1/2")
    monkeypatch.setenv("GRAPHQL_MAX_PAGE_SIZE", "50")
    settings = Settings()
    assert settings.resolved_database_url == "postgres://u@h/db"
    assert settings.redis_url == "redis://h:1/2"
    assert settings.graphql_max_page_size == 50
    assert not settings.is_sqlite


def test_embedded_defaults_use_sqlite_under_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = Settings()
    assert settings.embedded_database and settings.embedded_redis
    assert settings.resolved_database_url == "sqlite://var/herald.sqlite3"


def test_secret_never_prints() -> None:
    settings = Settings(secret_key="a-very-secret-value-of-enough-length-000")
    assert "a-very-secret" not in repr(settings) and "a-very-secret" not in str(settings.model_dump())


def test_the_local_smtp_sink_runs_on_embedded_defaults_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "SMTP_SINK", "SMTP_SINK_PORT", "ENV"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().smtp_sink_enabled and Settings().smtp_sink_port == 2525
    assert not Settings(database_url="postgres://db/herald").smtp_sink_enabled
    assert Settings(database_url="postgres://db/herald", smtp_sink=True).smtp_sink_enabled
    assert not Settings(env="prod", smtp_sink=True).smtp_sink_enabled  # never in production


def test_egress_allow_defaults_to_loopback_in_dev_and_nothing_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback = ip_address("127.0.0.1")
    assert Settings(env="dev").egress_policy.address_allowed(loopback)
    assert not Settings(env="prod", secret_key="x" * 48).egress_policy.address_allowed(loopback)
    assert not Settings(env="dev", egress_allow="").egress_policy.address_allowed(loopback)
    monkeypatch.setenv("EGRESS_ALLOW", "10.8.0.0/16, smtp.corp.internal")
    policy = Settings(env="prod", secret_key="x" * 48).egress_policy
    assert policy.address_allowed(ip_address("10.8.1.1")) and not policy.address_allowed(loopback)
    assert policy.host_allowed("smtp.corp.internal")


def test_a_bad_egress_allow_entry_stops_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGRESS_ALLOW", "10.0.0.0/8,10.0.0.0/99")
    with pytest.raises(ValueError, match="EGRESS_ALLOW"):
        Settings()


def test_oidc_issuer_and_audience_come_together() -> None:
    with pytest.raises(ValueError, match="OIDC_ISSUER and OIDC_AUDIENCE"):
        Settings(oidc_issuer="https://id.example.com")
    with pytest.raises(ValueError, match="OIDC_ISSUER and OIDC_AUDIENCE"):
        Settings(oidc_audience="herald")
    both = Settings(oidc_issuer="https://id.example.com", oidc_audience="herald", oidc_roles_claim="")
    assert (both.oidc_issuer, both.oidc_audience, both.oidc_roles_claim) == ("https://id.example.com", "herald", None)
    assert Settings().oidc_issuer is None
