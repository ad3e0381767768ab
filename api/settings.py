"""Twelve-factor settings: everything comes from the environment (or is passed to `create_app`)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from tortoise.backends.base.config_generator import expand_db_url

from api.db_connection import NoResetConnection
from models.egress_rules import DEV_DEFAULT_ALLOW, EgressPolicy, parse_allow

PLACEHOLDER_SECRET = "change-me-in-production"
MODEL_MODULES = [
    "models.tenancy.sandbox",
    "models.tenancy.audit",
    "models.tenancy.identity",
    "models.audience.entities",
    "models.presets.preset",
    "models.campaigns.campaign",
    "models.audience.imports",
    "models.ledger.delivery",
    "models.reporting.tracking",
    "models.outbox.model",
    "models.webhooks.model",
    "models.people.user",
    "models.approvals.model",
    "models.business_rules.model",
    "models.triggers.trigger",
]


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class InsecureSettingsError(RuntimeError):
    """Raised when production settings are unsafe to start with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    env: Environment = Environment.DEV
    # None means "embedded": a SQLite file under data_dir.
    database_url: str | None = None
    # None means "embedded": a redis-server owned by `herald serve`.
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    data_dir: Path = Path("var")
    log_level: str = "INFO"

    db_pool_max: int = Field(20, ge=1, le=500)

    # GraphQL limits.
    graphql_max_depth: int = Field(12, ge=2)
    graphql_max_tokens: int = Field(3000, ge=50)
    graphql_max_aliases: int = Field(30, ge=1)
    graphql_max_page_size: int = Field(100, ge=1, le=1000)
    # Each field costs 1; a field taking `first` multiplies the cost of its selection by it.
    graphql_max_complexity: int = Field(20_000, ge=100)
    graphql_max_body_bytes: int = Field(1_000_000, ge=1024)
    # Introspection is answered to authenticated callers only (every GraphQL request is authenticated), so it
    # is on in production too: partners generate clients from it. false turns it off.
    graphql_introspection: bool = True
    graphql_ide: bool | None = None  # default: on in dev, off in prod
    # Where GraphiQL's files are served from: unset, from the `graphiql` assets this package bundles (works
    # offline and under a strict CSP); or the base URL of a self-hosted copy (graphiql.min.js, graphiql.min.css,
    # react.production.min.js, react-dom.production.min.js).
    graphiql_assets_url: str | None = None
    # Planned execution (resolvers/execution_context.py): off, graphql-core's own execution answers. It turns
    # itself off, with a warning, on strawberry/graphql-core versions other than the pinned ones.
    graphql_planned_execution: bool = True
    # Compiled reads (api/compiled_front.py): persisted campaign reads answered from one PostgreSQL statement's
    # JSON. On only with planned execution (so GRAPHQL_PLANNED_EXECUTION=false is stock execution throughout).
    graphql_compiled_reads: bool = True
    # Query-cost budget per API key (resolvers/cost.py): up to this many points, regained at this rate per
    # second; an operation needs its requested cost available. 0 turns the budget off. At least
    # GRAPHQL_MAX_COMPLEXITY, so every operation allowed at all can run on a full budget.
    cost_budget_maximum: int = Field(20_000, ge=0)
    cost_restore_rate: float = Field(1_000.0, gt=0)
    # A successful API-key lookup is reused this long per process; a key revoked elsewhere (the CLI, another
    # process) keeps working until then. A revocation in the same process takes effect at once. 0 = no cache.
    auth_cache_seconds: float = Field(5.0, ge=0, le=60)
    # People signing in with OpenID Connect (api/oidc.py): bearer tokens issued by OIDC_ISSUER for OIDC_AUDIENCE
    # (the `aud` claim), verified against the provider's published keys. Both unset: API keys only.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # A claim (dotted for nested ones, e.g. `realm_access.roles`) whose values `<sandbox>:<ROLE>` grant ROLE in that
    # sandbox, beside the memberships ADMINs manage. Unset: memberships only.
    oidc_roles_claim: str | None = None
    # The provider's key set is reused this long; a token signed with an unknown key id fetches it again, at most
    # once per OIDC_JWKS_MIN_REFRESH_SECONDS.
    oidc_jwks_cache_seconds: float = Field(3600.0, gt=0)
    oidc_jwks_min_refresh_seconds: float = Field(10.0, ge=0)
    # Clock skew tolerated on `exp`, `iat` and `nbf`.
    oidc_leeway_seconds: float = Field(30.0, ge=0, le=300)
    # Automatic persisted queries (Apollo APQ) remembered per process; 0 = none stored.
    persisted_query_cache_size: int = Field(1000, ge=0)
    ws_max_subscriptions: int = Field(100, ge=1)
    ws_connection_init_timeout_seconds: float = Field(10.0, gt=0)
    # Browser origins (scheme://host[:port]) allowed to call the API: CORS over HTTP and the WebSocket Origin
    # check. JSON list in the environment: ALLOWED_ORIGINS='["https://app.example.com"]'.
    allowed_origins: list[str] = []

    # Event bus and worker.
    worker_in_process: bool | None = None  # default: on when Redis is embedded
    worker_max_jobs: int = Field(50, ge=1)
    worker_poll_delay_seconds: float = Field(0.05, gt=0)
    # `herald worker` lowers its CPU priority by this much (os.nice) so that sending yields to web processes on
    # the same machine; 0 leaves it as started. Not applied to `herald serve`'s in-process worker.
    worker_nice: int = Field(10, ge=0, le=19)
    # While web processes are serving requests, an in-app run's sender works at most this share of the time, in
    # small batches (jobs/send_pacing.py), so the API stays responsive; 1 = never held back.
    send_share_when_api_busy: float = Field(0.25, gt=0, le=1)
    # A web process counts as busy from this many requests a second (probes and /metrics aside): a dashboard's
    # polls do not slow a send down, an API under load does.
    api_busy_requests_per_second: float = Field(20.0, gt=0, le=100_000)
    # Outbound webhooks (jobs/webhooks.py): false, this process's worker neither fans out nor sends them.
    webhook_delivery: bool = True
    # A receiver answering later than this counts as a failed attempt (retried later).
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # A delivery a worker took is retaken by another after this (the first one died mid-send).
    webhook_lease_seconds: float = Field(60.0, gt=0, le=3600)
    # Published outbox events are deleted after this many hours (unpublished ones are kept).
    outbox_retention_hours: float = Field(24, ge=0)

    # Local SMTP sink (api/mail_sink.py): keeps what it receives as a Maildir under data_dir/mail.
    # Default: on with the embedded database outside production, i.e. a first `herald serve`.
    smtp_sink: bool | None = None
    smtp_sink_port: int = Field(2525, ge=0, le=65535)

    # Message presets: each provider check (connect, EHLO, HTTP request, ...) gives up after this.
    # A RUNNING campaign run whose worker stopped renewing this lease is resumed by another worker. Renewed five times
    # per lease while the run works: short, so a killed worker's run goes on within seconds (issue 22).
    run_lease_seconds: float = Field(5.0, gt=0, le=3600)
    # First retry delay of a temporary send failure without Retry-After (doubles per attempt).
    send_retry_base_seconds: float = Field(30.0, gt=0, le=3600)
    # HTTP providers (Twilio, FCM): a send with no answer after this many seconds is a timeout.
    provider_timeout_seconds: float = Field(15.0, gt=0, le=300)
    # An SMS sent with no answer (timeout after the request went) is held UNCONFIRMED until its status callback
    # settles it or this window ends; then FAIL (at most once, the default) or RESEND (at least once).
    sms_unconfirmed_window_seconds: float = Field(1800.0, gt=0, le=7 * 86400)
    sms_unconfirmed_policy: Literal["FAIL", "RESEND"] = "FAIL"
    # Extra "send part" jobs a large run is split into, so several workers share it.
    run_send_parts: int = Field(4, ge=0, le=64)
    # How long an API trigger's idempotency key holds (Stripe keeps keys 24 h): the same key then replays the
    # stored answer; after it, the key is a new call.
    trigger_idempotency_hours: float = Field(24.0, gt=0, le=24 * 30)
    # Accepted triggers wake their campaign's sender once per window this long (a job deferred to its end), not
    # once per call; 0: one job per call, due at once (tests that run due jobs only).
    trigger_wake_seconds: float = Field(0.1, ge=0, le=5)
    preset_check_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # Profile imports: uploads are kept under data_dir/imports until their job ends.
    import_max_bytes: int = Field(2_000_000_000, ge=1024, le=2**31 - 1)
    import_batch_rows: int = Field(2000, ge=1, le=10_000)
    # Base of the links put in messages (open pixel, click redirects, unsubscribe, provider callbacks): the
    # address recipients and providers reach this server at. `herald serve` derives it from --host/--port
    # when unset; behind a proxy set it to the public https origin.
    public_url: str = "http://127.0.0.1:8000"
    # Outbound connections a sandbox ADMIN aims (SMTP hosts, provider URLs) reach public addresses only; these
    # exceptions (CIDRs, addresses, host names, "*.domain") may be internal. Unset: loopback outside production,
    # nothing in production. An empty value allows no exception in any environment.
    egress_allow: str | None = None

    @field_validator("egress_allow")
    @classmethod
    def _egress_allow_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_allow(value)  # its ValueError names the bad entry
        return value

    # Amazon SNS signing certificates (and subscription confirmations) are fetched only from URLs this pattern
    # matches: AWS's own SNS hosts over https. Tests point it at a local server.
    sns_cert_url_pattern: str = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"

    @field_validator("sns_cert_url_pattern")
    @classmethod
    def _sns_pattern_compiles(cls, value: str) -> str:
        re.compile(value)  # a bad pattern stops startup with re's message
        return value

    # ENV=prod wants an https PUBLIC_URL (recipients' clients follow these links); true accepts http.
    allow_http_public_url: bool = False

    @field_validator("public_url")
    @classmethod
    def _public_url_is_an_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("PUBLIC_URL must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _oidc_needs_issuer_and_audience(self) -> Settings:
        if (self.oidc_issuer is None) != (self.oidc_audience is None):
            raise ValueError("OIDC_ISSUER and OIDC_AUDIENCE are set together (or neither)")
        return self

    @model_validator(mode="after")
    def _webhook_lease_outlasts_requests(self) -> Settings:
        if self.webhook_lease_seconds < 2 * self.webhook_timeout_seconds:
            raise ValueError("WEBHOOK_LEASE_SECONDS must be at least twice WEBHOOK_TIMEOUT_SECONDS")
        return self

    @model_validator(mode="after")
    def _budget_fits_the_largest_operation(self) -> Settings:
        if 0 < self.cost_budget_maximum < self.graphql_max_complexity:
            raise ValueError(
                f"COST_BUDGET_MAXIMUM ({self.cost_budget_maximum}) must be 0 (off) or at least "
                f"GRAPHQL_MAX_COMPLEXITY ({self.graphql_max_complexity}): a costlier operation could never run"
            )
        return self

    @field_validator("database_url", "redis_url", "oidc_issuer", "oidc_audience", "oidc_roles_claim", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def is_prod(self) -> bool:
        return self.env is Environment.PROD

    @property
    def introspection_enabled(self) -> bool:
        return self.graphql_introspection

    @property
    def ide_enabled(self) -> bool:
        return (not self.is_prod) if self.graphql_ide is None else self.graphql_ide

    @property
    def smtp_sink_enabled(self) -> bool:
        if self.is_prod:
            return False
        return self.embedded_database if self.smtp_sink is None else self.smtp_sink

    @property
    def egress_policy(self) -> EgressPolicy:
        if self.egress_allow is not None:
            return parse_allow(self.egress_allow)
        return EgressPolicy() if self.is_prod else parse_allow(DEV_DEFAULT_ALLOW)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite://{(self.data_dir / 'herald.sqlite3').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def check_secure(self) -> None:
        """Refuse to run production with a missing or placeholder secret."""
        if not self.is_prod:
            return
        secret = self.secret_key.get_secret_value()
        if not secret or secret == PLACEHOLDER_SECRET or len(secret) < 32:
            raise InsecureSettingsError(
                "SECRET_KEY must be set to a random value of at least 32 characters when ENV=prod "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )

    def check_production(self) -> None:
        """`serve` and `worker` in production: refuse the defaults that only make sense on one developer's
        machine (an embedded Redis per process, links pointing at loopback)."""
        if not self.is_prod:
            return
        if self.redis_url is None:
            raise InsecureSettingsError(
                "REDIS_URL must be set when ENV=prod: every `herald serve` and `herald worker` must share one "
                "Redis (jobs, subscriptions and rate limits); an embedded one per process would split them."
            )
        if "public_url" not in self.model_fields_set:
            raise InsecureSettingsError(
                "PUBLIC_URL must be set when ENV=prod to the absolute address recipients reach this server at "
                "(e.g. https://herald.example.com): tracking, unsubscribe and provider callback links use it."
            )
        if urlsplit(self.public_url).scheme != "https" and not self.allow_http_public_url:
            raise InsecureSettingsError(
                f"PUBLIC_URL must be https when ENV=prod (it is {self.public_url}); set ALLOW_HTTP_PUBLIC_URL=true "
                "to accept http."
            )


def database_url_with_options(url: str, pool_max: int, *, for_migrations: bool = False) -> str:
    """Add the connection options Herald relies on, keeping any the operator set."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme.startswith("sqlite"):
        query.setdefault("busy_timeout", "10000")
        query.setdefault("synchronous", "NORMAL")
        if for_migrations:
            # Table rebuilds during migrations must never cascade-delete child rows.
            query["foreign_keys"] = "OFF"
    else:
        query.setdefault("maxsize", str(pool_max))
    return urlunsplit(parts._replace(query=urlencode(query)))


def connection_config(database_url: str, pool_max: int = 20, *, for_migrations: bool = False) -> str | dict[str, Any]:
    """Tortoise's connection: the URL with Herald's options; on asyncpg, as a dict naming the connection class
    that skips the reset statement on release (api/db_connection.py), on SQLite the client whose transactions
    begin IMMEDIATE (api/sqlite_engine.py); migrations keep the stock clients."""
    url = database_url_with_options(database_url, pool_max, for_migrations=for_migrations)
    if for_migrations:
        return url
    expanded = expand_db_url(url)
    if expanded["engine"] == "tortoise.backends.sqlite":
        expanded["engine"] = "api.sqlite_engine"  # write transactions begin IMMEDIATE (api/sqlite_engine.py)
        return expanded
    if expanded["engine"] != "tortoise.backends.asyncpg":
        return url
    expanded["credentials"]["connection_class"] = NoResetConnection
    # No JIT compilation: Herald's statements are short, and a plan costed above jit_above_cost (the trigger
    # acceptance's one statement) paid tens of milliseconds of compiling at every call: at 200 triggers/s the
    # acceptance p99 went from 75-86 ms to 35 ms without it, and the audience snapshot loses ~0.3 s per 200,000.
    expanded["credentials"].setdefault("server_settings", {}).setdefault("jit", "off")
    return expanded


def tortoise_config(database_url: str, pool_max: int = 20, *, for_migrations: bool = False) -> dict[str, Any]:
    return {
        "connections": {"default": connection_config(database_url, pool_max, for_migrations=for_migrations)},
        "apps": {
            "herald": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def _cli_tortoise_config() -> dict[str, Any]:
    settings = Settings()
    return tortoise_config(settings.resolved_database_url, settings.db_pool_max, for_migrations=True)


# Read by the `tortoise` CLI (makemigrations) through [tool.tortoise] in pyproject.toml.
TORTOISE_ORM = _cli_tortoise_config()
