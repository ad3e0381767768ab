"""Tracking at render time (DESIGN §6): the open pixel, click rewriting and the unsubscribe URL of a message.

One `MessageTracker` per run. Per batch, `track` finds the links of every rendered message (one scan of each
part), stores them as `TrackedLink` rows with one multi-row `INSERT … ON CONFLICT DO NOTHING` and one SELECT
(only for URLs this run has not met yet), then rewrites each message from memory, with no database round trip
(`prepare` and `apply` are the two halves).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from tortoise import connections

from api.settings import Settings
from jobs.channels.base import EmailContent, MessageContent, SmsContent
from models.campaigns.campaign import Campaign, CampaignRun
from models.campaigns.rules import Category, Channel
from models.reporting.link_tracking import FoundLinks, add_open_pixel, find_html_links, find_text_links
from models.reporting.tracking_tokens import TokenPurpose, TokenSigner
from models.sql.params import Dialect, SqlParams
from models.sql.reads import dialect_of

TRACKING_PREFIX = "/t/"
# URLs remembered per run (url → link id); past it, unseen URLs are looked up again per batch.
_LINK_CACHE_MAX = 50_000
_ROWS_PER_STATEMENT = 500


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def open_path(token: str) -> str:
    return f"{TRACKING_PREFIX}o/{token}"


def click_path(token: str) -> str:
    return f"{TRACKING_PREFIX}c/{token}"


def unsubscribe_path(token: str) -> str:
    return f"{TRACKING_PREFIX}u/{token}"


class MessageTracker:
    """What a run's messages carry for tracking, decided once from the campaign's tracking options."""

    def __init__(self, settings: Settings, campaign: Campaign, run: CampaignRun) -> None:
        self.signer = TokenSigner(settings.secret_key.get_secret_value())
        self.base = settings.public_url
        self.own_prefix = self.base + TRACKING_PREFIX
        self.run = run
        channel = Channel(campaign.channel)
        options = campaign.tracking or {}
        self.email = channel is Channel.EMAIL
        self.opens = self.email and bool(options.get("opens", True))
        self.clicks = channel in (Channel.EMAIL, Channel.SMS) and bool(options.get("clicks", True))
        # List-Unsubscribe headers are for marketing mail; the template variable works in any email.
        self.list_unsubscribe = self.email and Category(campaign.category) is Category.MARKETING
        self.link_ids: dict[str, int] = {}
        self._hrefs: dict[str, str | None] = {}  # find_html_links' memo for the run

    @property
    def active(self) -> bool:
        return self.email or self.clicks

    def unsubscribe_url(self, delivery_id: int) -> str | None:
        if not self.email:
            return None
        return self.base + unsubscribe_path(self.signer.sign(TokenPurpose.UNSUBSCRIBE, delivery_id))

    def _scan(self, content: MessageContent) -> tuple[FoundLinks | None, FoundLinks | None]:
        """The trackable links of a message's parts: (HTML, text) of an email, (None, body) of an SMS."""
        if not self.clicks:
            return None, None
        if isinstance(content, EmailContent):
            html_part = find_html_links(content.html, self.own_prefix, self._hrefs) if content.html else None
            text_part = find_text_links(content.text, self.own_prefix) if content.text else None
            return html_part, text_part
        if isinstance(content, SmsContent):
            return None, find_text_links(content.body, self.own_prefix)
        return None, None

    def _links_of(self, content: MessageContent) -> list[str]:
        return [url for found in self._scan(content) if found is not None for url in found.urls]

    async def track(
        self, contents: Sequence[MessageContent], delivery_ids: Sequence[int], now: datetime
    ) -> list[MessageContent]:
        """`prepare` then `apply` for a batch, each message's links found in one scan."""
        scans = [self._scan(content) for content in contents]
        await self._prepare_urls(
            [url for scan in scans for found in scan if found is not None for url in found.urls], now
        )
        return [
            self._apply(content, delivery_id, scan)
            for content, delivery_id, scan in zip(contents, delivery_ids, scans, strict=True)
        ]

    async def prepare(self, contents: Sequence[MessageContent], now: datetime) -> None:
        """Makes sure every trackable URL of `contents` has a link id (two statements per batch at most)."""
        await self._prepare_urls([url for content in contents for url in self._links_of(content)], now)

    async def _prepare_urls(self, found: list[str], now: datetime) -> None:
        if not self.clicks:
            return
        batch = dict.fromkeys(found)
        urls = [url for url in batch if url not in self.link_ids]
        if not urls:
            return
        if len(self.link_ids) + len(urls) > _LINK_CACHE_MAX:
            # Forget the URLs of earlier batches, keeping every URL this batch needs.
            self.link_ids.clear()
            urls = list(batch)
        for start in range(0, len(urls), _ROWS_PER_STATEMENT):
            await self._store(urls[start : start + _ROWS_PER_STATEMENT], now)

    async def _store(self, urls: list[str], now: datetime) -> None:
        conn = connections.get("default")
        hashes = {url_hash(url): url for url in urls}
        params = SqlParams(dialect_of())
        pg = params.dialect is Dialect.POSTGRES

        def ph(value: Any, pg_type: str) -> str:
            placeholder = params.add(value)
            return f"CAST({placeholder} AS {pg_type})" if pg else placeholder

        rows = [
            f"({ph(self.run.sandbox_id, 'BIGINT')}, {ph(self.run.id, 'BIGINT')}, "
            f"{ph(self.run.campaign_id, 'BIGINT')}, {ph(digest, 'TEXT')}, {ph(url, 'TEXT')}, "
            f"{ph(now, 'TIMESTAMPTZ')})"
            for digest, url in hashes.items()
        ]
        await conn.execute_query(
            "INSERT INTO tracked_link (sandbox_id, run_id, campaign_id, url_hash, url, created_at) VALUES "
            + ", ".join(rows)
            + " ON CONFLICT (run_id, url_hash) DO NOTHING",
            params.values,
        )
        params = SqlParams(dialect_of())
        run = params.add(self.run.id)
        listed = ", ".join(params.add(digest) for digest in hashes)
        found = await conn.execute_query_dict(
            f"SELECT id, url_hash FROM tracked_link WHERE run_id = {run} AND url_hash IN ({listed})", params.values
        )
        for row in found:
            self.link_ids[hashes[row["url_hash"]]] = int(row["id"])

    def _click_url(self, delivery_id: int) -> Callable[[str], str | None]:
        # One token per link of the message: a link repeated in the HTML (and the text part) is signed once.
        signed: dict[str, str | None] = {}

        def tracked(url: str) -> str | None:
            if url in signed:
                return signed[url]
            link_id = self.link_ids.get(url)
            # None cannot happen after prepare(); better untracked than broken
            token = None if link_id is None else self.signer.sign(TokenPurpose.CLICK, delivery_id, link_id)
            signed[url] = None if token is None else self.base + click_path(token)
            return signed[url]

        return tracked

    def apply(self, content: MessageContent, delivery_id: int) -> MessageContent:
        """The message as sent: links rewritten, pixel added, unsubscribe URL attached (marketing email)."""
        return self._apply(content, delivery_id, self._scan(content))

    def _apply(
        self, content: MessageContent, delivery_id: int, scan: tuple[FoundLinks | None, FoundLinks | None]
    ) -> MessageContent:
        html_links, text_links = scan
        if isinstance(content, EmailContent):
            html_part, text_part = content.html, content.text
            if self.clicks:
                tracked = self._click_url(delivery_id)
                if html_part and html_links is not None:
                    html_part = html_links.rewrite(tracked)
                if text_part and text_links is not None:
                    text_part = text_links.rewrite(tracked)
            if self.opens and html_part is not None:
                pixel = self.base + open_path(self.signer.sign(TokenPurpose.OPEN, delivery_id))
                html_part = add_open_pixel(html_part, pixel)
            return dataclasses.replace(
                content,
                html=html_part,
                text=text_part,
                unsubscribe_url=content.unsubscribe_url if self.list_unsubscribe else None,
            )
        if isinstance(content, SmsContent) and self.clicks and text_links is not None:
            return SmsContent(body=text_links.rewrite(self._click_url(delivery_id)))
        return content
