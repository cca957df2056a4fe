"""Feed pollers: conditional GET, per-feed interval and backoff, one node per feed, health."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
import structlog

from alertd import backoff, db, errors, logs, metrics, openings, points, settings
from alertd.context import Context
from alertd.ingest import cap_documents, feedstate, headsup, quarantine
from feeds import atom, jma, shelter_status
from feeds import errors as feed_errors

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One configured feed."""

    name: str
    kind: str  # a key of HANDLERS: cap, jma, shelter_status
    url: str
    interval_s: float


class FetchError(Exception):
    """The feed could not be fetched."""


class TooLargeFetch(FetchError):
    """The document is larger than feeds.max_bytes."""

    def __init__(self, url: str, limit: int, head: bytes, size: int) -> None:
        super().__init__(f"{url} is larger than {limit} bytes")
        self.head = head  # its first bytes, for the quarantine
        self.size = size  # its declared size, or what was read of it


def configured(cfg: settings.Feeds) -> list[FeedSpec]:
    """Every feed named in the configuration."""
    specs = [FeedSpec(f"cap:{u}", "cap", u, cfg.cap_interval_s) for u in cfg.cap_urls]
    if cfg.jma_url:
        specs.append(FeedSpec(f"jma:{cfg.jma_url}", "jma", cfg.jma_url, cfg.jma_interval_s))
    specs += [FeedSpec(f"shelter_status:{u}", "shelter_status", u,
                       cfg.shelter_status_interval_s) for u in cfg.shelter_status_urls]
    return specs


def next_delay(spec: FeedSpec, failures: int, max_backoff_s: float,
               rng: random.Random | None = None) -> float:
    """Seconds to the next poll: the interval, or the back-off policy on failure (from one
    interval up to twice it after the first failure, doubling, never above max_backoff_s)."""
    if failures <= 0:
        return spec.interval_s
    return backoff.delay(failures + 1, spec.interval_s, max_backoff_s, rng=rng)


class Poller:
    """Polls one feed for as long as this node holds the feed's advisory lock."""

    def __init__(self, c: Context, spec: FeedSpec, http: aiohttp.ClientSession) -> None:
        self.c = c
        self.spec = spec
        self.http = http
        self._incomplete = False  # some entries of the last index could not be fetched
        self.lock_attempts = 0  # for operators' curiosity and for tests
        self.holding = False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop`; another node holding the feed's lock makes this one wait."""
        # Nothing is ingested before the location index is loaded: an order matched against
        # an empty index would reach nobody and, being recorded, never be matched again.
        waiter = asyncio.ensure_future(self.c.points.ready.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        while not stop.is_set():  # a database down at start delays the poller, never ends it
            try:
                await feedstate.register(self.c.pool, self.spec.name, self.spec.kind,
                                         self.spec.url)
                break
            except db.UNAVAILABLE as exc:
                log.warning("poller_database_error", feed=self.spec.name,
                            error=logs.describe(exc))
                await backoff.pause(stop, 1.0)
        while not stop.is_set():
            try:
                conn = await db.connect_one(self.c.cfg.database.url)
            except Exception as exc:
                log.warning("poller_connect_failed", feed=self.spec.name,
                            error=logs.describe(exc))
                await backoff.pause(stop, self.spec.interval_s)
                continue
            try:
                got = await feedstate.try_lock(conn, self.spec.name)
                self.lock_attempts += 1
                self.holding = got
                if got:
                    await self._loop(conn, stop)
                else:
                    await backoff.pause(stop, self.spec.interval_s)  # someone else polls it
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("poller_database_error", feed=self.spec.name,
                            error=logs.describe(exc))
                await backoff.pause(stop, 1.0)
            finally:
                self.holding = False
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _loop(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set() and not lock_conn.is_closed():
            due = await feedstate.seconds_until_due(self.c.pool, self.spec.name)
            if due > 0:
                await backoff.pause(stop, min(due, self.spec.interval_s))
                continue
            failures = await self.poll_once()
            delay = next_delay(self.spec, failures, self.c.cfg.feeds.max_backoff_s)
            await feedstate.schedule(self.c.pool, self.spec.name, delay)

    async def poll_once(self) -> int:
        """One conditional fetch and the handling of what it brought; returns failures so far."""
        name = self.spec.name
        state = await feedstate.get(self.c.pool, name)
        self._incomplete = False
        try:
            status, body, headers = await self._get(self.spec.url, state.validators.etag,
                                                    state.validators.last_modified)
            items = 0 if status == 304 else await self._handle(body)
        except Exception as exc:  # one feed's trouble, or a bug, must not stop its poller
            expected = (FetchError, feed_errors.FeedError, errors.AlertdError,
                        aiohttp.ClientError, TimeoutError)
            reason = _reason(exc)
            metrics.FEED_ERRORS.labels(name).inc()
            if isinstance(exc, expected):
                log.warning("feed_poll_failed", feed=name, reason=reason)
            else:
                log.exception("feed_poll_crashed", feed=name)
            return await feedstate.record_failure(self.c.pool, name, reason)
        # A new index fully handled: remember its validators. Partly handled (dead links):
        # forget them, so the next poll fetches it in full and retries those entries.
        validators = None  # not modified (304): keep the stored ones
        if status == 200 and self._incomplete:
            validators = feedstate.Validators(None, None)
        elif status == 200:
            validators = feedstate.Validators(headers.get("ETag"), headers.get("Last-Modified"))
        await feedstate.record_success(self.c.pool, name, items, validators)
        metrics.FEED_ITEMS.labels(name).inc(items)
        metrics.FEED_LAST_SUCCESS.labels(name).set(datetime.now(UTC).timestamp())
        return 0

    async def _get(self, url: str, etag: str | None = None, modified: str | None = None
                   ) -> tuple[int, bytes, Mapping[str, str]]:
        headers = {"User-Agent": "alertd feed poller"}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        limit = self.c.cfg.feeds.max_bytes
        timeout = aiohttp.ClientTimeout(total=self.c.cfg.feeds.timeout_s)
        async with self.http.get(url, headers=headers, timeout=timeout) as resp:
            if resp.status == 304:
                return 304, b"", {}
            if resp.status != 200:
                raise FetchError(f"HTTP {resp.status} from {url}")
            if (resp.content_length or 0) > limit:
                raise TooLargeFetch(url, limit, b"", resp.content_length or 0)
            # Read to the end: one read() returns only what has arrived so far, and a large
            # national message arrives in many pieces.
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > limit:
                    raise TooLargeFetch(url, limit, bytes(body[:quarantine.MAX_RAW]), len(body))
            return 200, bytes(body), resp.headers.copy()  # case-insensitive, as HTTP headers are

    async def _handle(self, body: bytes) -> int:
        """Hand a fetched document to its kind's handler; returns the items it brought."""
        return await HANDLERS[self.spec.kind](self, body)

    async def _cap_feed(self, body: bytes) -> int:
        # A CAP URL serves either one CAP document or an Atom index of them.
        if not atom.looks_like_feed(body):
            await self._cap(body)
            return 1
        return await self._index(body, self._cap)

    async def _jma_feed(self, body: bytes) -> int:
        return await self._index(body, self._jma)

    async def _index(self, body: bytes, entry_handler: Callable[[bytes], Awaitable[None]]
                     ) -> int:
        """Fetch and hand over each entry of an Atom index not handled before."""
        try:
            feed = atom.parse_feed(body)
        except feed_errors.FeedError as exc:
            await quarantine.put(self.c.pool, self.spec.name, body, f"feed index: {exc.reason}")
            raise
        for skipped in feed.skipped_entries:
            await self._skip(skipped)
        items = 0
        broken: list[str] = []
        # Oldest first (indexes list the newest first): updates then follow what they update.
        for entry in sorted(feed.entries, key=_age):
            if await feedstate.entry_seen(self.c.pool, self.spec.name, entry.id):
                continue
            if entry.inline:  # the entry carries its messages: nothing to fetch
                for document in entry.inline:
                    await entry_handler(document)
                await feedstate.mark_seen(self.c.pool, self.spec.name, entry.id)
                items += 1
                continue
            try:
                _, raw, _ = await self._get(entry.link)
            except TooLargeFetch as exc:
                # It will not shrink: quarantined once, not fetched again at every poll.
                await quarantine.put(self.c.pool, self.spec.name, exc.head,
                                     f"feed entry {entry.id[:200]!r}: {exc}", size=exc.size)
                await feedstate.mark_seen(self.c.pool, self.spec.name, entry.id)
                continue
            except (FetchError, aiohttp.ClientError, TimeoutError) as exc:
                # One dead link must not hold back the other entries: it is tried again at
                # the next poll (not marked seen), and the feed records the problem.
                broken.append(f"{entry.link}: {_reason(exc)}")
                continue
            await entry_handler(raw)
            await feedstate.mark_seen(self.c.pool, self.spec.name, entry.id)
            items += 1
        if broken:
            self._incomplete = True  # fetch the index in full next time, to retry them
            log.warning("feed_entries_unreachable", feed=self.spec.name, entries=len(broken))
            await feedstate.note_error(self.c.pool, self.spec.name, "; ".join(broken))
        return items

    async def _skip(self, skipped: atom.Skipped) -> None:
        """Count, log and quarantine (once) an entry with nothing to take: never silently."""
        pool, name = self.c.pool, self.spec.name
        if await feedstate.entry_seen(pool, name, skipped.id):
            return
        log.warning("feed_entry_skipped", feed=name, entry=skipped.id[:200],
                    reason=atom.SKIPPED_REASON)
        await quarantine.put(pool, name, skipped.raw,
                             f"feed entry {skipped.id[:200]!r}: {atom.SKIPPED_REASON}")
        await feedstate.count_skipped(pool, name)
        metrics.FEED_SKIPPED.labels(name).inc()
        await feedstate.mark_seen(pool, name, skipped.id)

    async def _cap(self, raw: bytes) -> None:
        # NotReady (the location index is behind) goes up: the poll fails, the entry is not
        # marked seen and the index is fetched in full again, so the next poll retries it.
        # A refused message (or each refused one of an EDXL-DE distribution) is quarantined
        # with its reason; the feed itself is healthy.
        await cap_documents.ingest(self.c, raw, self.spec.name)

    async def _jma(self, raw: bytes) -> None:
        try:
            report = jma.parse(raw)
        except feed_errors.FeedError as exc:
            await quarantine.put(self.c.pool, self.spec.name, raw, exc.reason)
            return
        # The state and the heads-ups it calls for commit together: a retry of the same report
        # (a crash before the entry was marked seen) finds both done and adds nothing.
        async with self.c.pool.acquire() as conn:
            await headsup.apply(conn, report, self.c.table, self.c.cfg)

    async def _shelter_status(self, body: bytes) -> int:
        try:
            batch = shelter_status.parse(body, None)
        except feed_errors.FeedError as exc:
            await quarantine.put(self.c.pool, self.spec.name, body, exc.reason)
            raise
        problems = [f"line {e.line}: {e.reason}" for e in batch.errors]
        applied = 0
        await points.catch_up(self.c.points)
        async with self.c.pool.acquire() as conn:
            for item in batch.items:
                try:
                    await openings.apply_status(
                        conn, self.c.points, self.c.cfg, item.shelter_id, item.status,
                        item.crowding, item.evacuees, self.spec.name, item.updated_at)
                except errors.AlertdError as exc:  # one bad row must not stop the others
                    problems.append(f"shelter {item.shelter_id!r}: {exc.reason}")
                    continue
                except (asyncpg.DataError, ValueError) as exc:  # hostile values
                    problems.append(f"shelter {item.shelter_id!r}: {type(exc).__name__}")
                    continue
                applied += 1
        if problems:
            await quarantine.put(self.c.pool, self.spec.name, body, "; ".join(problems[:50]))
        return applied


# The handler of a fetched document, by feed kind (sheets and tips will add theirs).
HANDLERS: dict[str, Callable[[Poller, bytes], Awaitable[int]]] = {
    "cap": Poller._cap_feed,
    "jma": Poller._jma_feed,
    "shelter_status": Poller._shelter_status,
}


def _reason(exc: BaseException) -> str:
    """Why a fetch or poll failed, as the feed's state records it: our own errors by their
    reason, anything else by its type and message (a timeout's message is empty)."""
    if isinstance(exc, feed_errors.FeedError | errors.AlertdError):
        return exc.reason
    if isinstance(exc, FetchError):
        return str(exc)
    return logs.describe(exc)


def _age(entry: atom.Entry) -> tuple[bool, datetime]:
    """Sort key: entries by time, those without one last (in their feed order)."""
    return (entry.updated is None, entry.updated or datetime.min.replace(tzinfo=UTC))


async def run_all(c: Context, stop: asyncio.Event) -> None:
    """Run a poller per configured feed until `stop`."""
    specs = configured(c.cfg.feeds)
    if not specs:
        return
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(Poller(c, s, http).run(stop) for s in specs))

