"""``KafkaPublishPipeline``: every scraped review becomes one ``ReviewMessage`` on the topic.

Built in ``from_crawler``; owns a confluent-kafka producer from ``open_spider`` to
``close_spider`` (idempotent, acks=all, from ``KafkaSettings.producer_config()``).
Per item, in order:

1. map it to the message contract; an optional field the contract refuses (an odd id, an
   overlong URL) is left out with a warning (``reviewscore/invalid_fields``) and the review
   kept; a review whose text it cannot carry is dropped with the validation error in the log
   (``reviewscore/invalid``);
2. drop a second copy of the same review within this crawl (pagination drift shows one
   review on two pages) (``reviewscore/duplicates``);
3. with incremental re-crawls on, drop a review whose message is byte-identical to one an
   earlier crawl delivered (``reviewscore/unchanged``); an edited review is sent again (a
   full crawl sends every review, and still records what it delivered);
4. produce it; the delivery report decides: success marks it seen (``reviewscore/published``),
   a retriable failure re-sends it up to ``publish_retries`` times (``reviewscore/retried``),
   a final failure is logged, counted (``reviewscore/failed``) and appended to
   ``undelivered-<spider>.jsonl`` in the state dir, which ``reviewscore publish`` re-sends.
   Nothing is marked seen before the broker acknowledged it, so nothing is lost.

A crawl that does not publish (``--no-publish``) runs ``ContractPipeline`` instead: steps 1
and 2 only, so a feed written with ``-o`` holds the reviews a full publishing crawl would send,
once each. The feed keeps the items' own fields: an optional field step 1 leaves out of the
message (an overlong id, say) is still in it, and nothing is skipped as unchanged.

``close_spider`` waits for every outstanding report (bounded by the delivery timeout); a
message still unconfirmed then takes the final-failure path (counted ``failed``, appended to
the undelivered file), since the broker may never have stored it. Then it logs the crawl
statistics.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from pydantic import ValidationError
from scrapy.exceptions import DropItem

from core.config import KafkaSettings, get_kafka_settings
from core.logs import client_logger
from core.messages import ReviewMessage, describe_validation_error
from scraper.items import ReviewItem
from scraper.publishing import digest, source_for, to_message
from scraper.seen import SeenState, state_file

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

log = logging.getLogger(__name__)

STAT = "reviewscore/{}"
# How long close_spider waits beyond the delivery timeouts before giving up on a report.
CLOSE_GRACE_S = 5.0


@dataclass(eq=False)  # identity, not value: each instance is one message awaiting its report
class _Pending:
    key: bytes
    value: bytes
    digest: str
    attempt: int = 0


class ContractPipeline:
    """Steps 1 and 2: the review as a message of the contract, once per crawl.

    It is the whole pipeline of a crawl that does not publish (``--no-publish -o reviews.jsonl``,
    a dry run whose feed should hold what publishing would send, not the second copy of a review
    shown on two pages, nor one the contract refuses), and the first half of ``KafkaPublishPipeline``.
    Either logs the crawl statistics when the crawl ends.
    """

    def __init__(self, crawler: Crawler, source: str | None = None) -> None:
        self.crawler = crawler
        self._source = source
        self._keys_this_crawl: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ContractPipeline:
        return cls(crawler, source=crawler.settings.get("REVIEWSCORE_SOURCE") or None)

    @property
    def spider_name(self) -> str:
        spider = self.crawler.spider
        return str(spider.name) if spider is not None else "unknown"

    @property
    def source(self) -> str:
        return self._source or source_for(self.spider_name)

    def close_spider(self) -> None:
        stats = self.crawler.stats.get_stats() if self.crawler.stats else {}
        log.info("crawl statistics: %s", json.dumps(summary(stats)))

    def process_item(self, item: Any) -> Any:
        self.checked_message(item)
        return item

    def checked_message(self, item: Any) -> ReviewMessage:
        """The item's message; ``DropItem`` for a review the contract refuses or already seen in this crawl."""
        review = item if isinstance(item, ReviewItem) else ReviewItem(**ItemAdapter(item).asdict())
        problems: list[str] = []
        try:
            message = to_message(review, self.source, problems)
        except ValidationError as exc:
            self._inc("invalid")
            reason = describe_validation_error(exc)
            raise DropItem(f"review {review.review_id or '?'} on {review.page_url}: {reason}") from exc
        for problem in problems:
            log.warning("review %s on %s: %s", review.review_id or "?", review.page_url, problem)
        if problems:
            self._inc("invalid_fields", len(problems))
        key_text = message.review_key
        if key_text in self._keys_this_crawl:
            self._inc("duplicates")
            raise DropItem(f"duplicate of {key_text} within this crawl", log_level="DEBUG")
        self._keys_this_crawl.add(key_text)
        return message

    def _inc(self, name: str, count: int = 1) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(STAT.format(name), count)


class KafkaPublishPipeline(ContractPipeline):
    def __init__(
        self,
        crawler: Crawler,
        kafka: KafkaSettings,
        *,
        state_dir: Path,
        incremental: bool,
        delivery_timeout_s: float,
        retries: int,
        source: str | None = None,
    ) -> None:
        super().__init__(crawler, source)
        self.kafka = kafka
        self.topic = kafka.topic
        self.state_dir = state_dir
        self.incremental = incremental
        self.delivery_timeout_s = delivery_timeout_s
        self.retries = retries
        self.producer: Any = None
        self.seen: SeenState | None = None
        # Produced and not yet reported on, in order (a dict as an ordered set), so that what
        # is still unconfirmed at the end can be kept in the undelivered file.
        self._unconfirmed: dict[_Pending, None] = {}
        self._to_resend: list[_Pending] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> KafkaPublishPipeline:
        settings = crawler.settings
        kafka = get_kafka_settings()
        if not kafka.bootstrap_servers:
            from core.runtime import adopt_running_infra

            if adopt_running_infra():  # a `reviewscore infra up` in this directory
                kafka = get_kafka_settings()
        return cls(
            crawler,
            kafka,
            state_dir=Path(settings.get("REVIEWSCORE_STATE_DIR", ".reviewscore/scraper")),
            incremental=settings.getbool("REVIEWSCORE_INCREMENTAL", True),
            delivery_timeout_s=settings.getfloat("REVIEWSCORE_DELIVERY_TIMEOUT", 30.0),
            retries=settings.getint("REVIEWSCORE_PUBLISH_RETRIES", 3),
            source=settings.get("REVIEWSCORE_SOURCE") or None,
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def open_spider(self) -> None:
        from confluent_kafka import Producer

        # First: a state held by another crawl refuses this one before anything is opened. A full
        # crawl holds it too: it skips nothing, but marks what it delivers, so the incremental
        # crawls after it do not send everything once more.
        path = state_file(self.state_dir, self.spider_name, self.kafka.bootstrap_servers or "", self.topic)
        self.seen = SeenState(path)
        config = self.kafka.producer_config()
        config["message.timeout.ms"] = int(self.delivery_timeout_s * 1000)
        self.producer = Producer(config, logger=client_logger(f"{__name__}.librdkafka"))
        log.info(
            "publishing to %s on %s (incremental=%s, state in %s)",
            self.topic,
            self.kafka.bootstrap_servers,
            self.incremental,
            self.state_dir,
        )

    def close_spider(self) -> None:
        if self.producer is None:  # open_spider failed; Scrapy reported why
            return
        deadline = time.monotonic() + self.delivery_timeout_s * (self.retries + 1) + CLOSE_GRACE_S
        while (self._unconfirmed or self._to_resend) and time.monotonic() < deadline:
            self._resend()
            self.producer.poll(0.1)
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        waiting, self._to_resend = self._to_resend, []
        for pending in waiting:
            self._give_up(pending, "not re-sent before the crawl ended")
        unconfirmed, self._unconfirmed = list(self._unconfirmed), {}
        if unconfirmed:
            log.error("%d messages were not confirmed by the broker before the crawl ended", len(unconfirmed))
        for pending in unconfirmed:
            self._give_up(pending, "not confirmed by the broker before the crawl ended")
        if self.seen is not None:
            self.seen.close()
        super().close_spider()

    # --- items -------------------------------------------------------------------------------

    def process_item(self, item: Any) -> Any:
        message = self.checked_message(item)
        key_text = message.review_key
        key, value = message.to_kafka()
        fingerprint = digest(value)
        if self.incremental and self.seen is not None and self.seen.unchanged(key_text, fingerprint):
            self._inc("unchanged")
            raise DropItem(f"{key_text} is unchanged since it was published", log_level="DEBUG")
        self._send(_Pending(key, value, fingerprint))
        self._resend()
        self.producer.poll(0)
        return item

    # --- producing ---------------------------------------------------------------------------

    def _send(self, pending: _Pending) -> None:
        while True:
            try:
                self.producer.produce(
                    self.topic, key=pending.key, value=pending.value, on_delivery=self._report(pending)
                )
                break
            except BufferError:
                self.producer.poll(0.1)  # local queue full: let delivery reports drain
        self._unconfirmed[pending] = None

    def _resend(self) -> None:
        waiting, self._to_resend = self._to_resend, []
        for pending in waiting:
            self._send(pending)

    def _report(self, pending: _Pending) -> Any:
        def on_delivery(err: Any, _msg: Any) -> None:
            if pending not in self._unconfirmed:
                return  # given up at close already: a late report must not count it twice
            del self._unconfirmed[pending]
            if err is None:
                self._inc("published")
                if self.seen is not None:
                    try:
                        self.seen.mark(pending.key.decode("utf-8"), pending.digest)
                    except sqlite3.Error as exc:  # delivered all the same: at worst re-sent next crawl
                        self._inc("seen_state_errors")
                        log.error("could not record %s as delivered: %s", pending.key.decode("utf-8"), exc)
                return
            if pending.attempt < self.retries and _retriable(err):
                pending.attempt += 1
                self._inc("retried")
                log.warning("delivery of %s failed (%s); re-sending (%d)", pending.key.decode(), err, pending.attempt)
                self._to_resend.append(pending)
                return
            self._give_up(pending, str(err))

        return on_delivery

    def _give_up(self, pending: _Pending, reason: str) -> None:
        self._inc("failed")
        path = self.state_dir / f"undelivered-{self.spider_name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(pending.value + b"\n")
        log.error("could not deliver %s: %s (kept in %s)", pending.key.decode("utf-8"), reason, path)


def _retriable(err: Any) -> bool:
    """Worth sending again: what librdkafka calls retriable, and a message that timed out
    waiting for an unreachable broker (it may be back by the next attempt)."""
    from confluent_kafka import KafkaError

    try:
        return bool(err.retriable()) or err.code() == KafkaError._MSG_TIMED_OUT
    except AttributeError:
        return False


SUMMARY_KEYS = {
    "pages": "response_received_count",
    "listing_pages": STAT.format("listing_pages"),
    "review_pages": STAT.format("review_pages"),
    "reviews": "item_scraped_count",
    "found": STAT.format("reviews_found"),
    "published": STAT.format("published"),
    "unchanged": STAT.format("unchanged"),
    "duplicates": STAT.format("duplicates"),
    "invalid": STAT.format("invalid"),
    "invalid_fields": STAT.format("invalid_fields"),
    "malformed": STAT.format("malformed_reviews"),
    "failed": STAT.format("failed"),
    "retried": STAT.format("retried"),
    "robots_forbidden": "robotstxt/forbidden",
    "cache_hits": "httpcache/hit",
    "revalidated": "httpcache/revalidate",
}


def summary(stats: dict[str, Any]) -> dict[str, int]:
    """The figures a person wants after a crawl, from Scrapy's stats (missing ones are 0)."""
    return {name: int(stats.get(key, 0) or 0) for name, key in SUMMARY_KEYS.items()}
