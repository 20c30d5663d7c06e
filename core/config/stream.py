"""Stream worker settings (prefix ``STREAM_``): batching, retries, metrics."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config
from core.messages import MAX_TEXT_CHARS


class StreamSettings(BaseSettings):
    model_config = settings_config("STREAM_")

    app_id: str = Field(default="reviewscore-worker", description="Faust app id = Kafka consumer group.")
    engine: Literal["faust", "batch"] = Field(
        default="faust",
        description=(
            "Consumer engine: 'faust' (an agent with take_events) or 'batch' (librdkafka micro-batches: "
            "same guarantees, 2.8x the no-model throughput on 2 cores, 18k against 6.4k reviews/s; "
            "for fast models and GPUs)."
        ),
    )
    max_batch: int = Field(
        default=256,
        ge=1,
        description=(
            "Most messages taken from the topic per batch: the unit of commit and of redelivery after a crash "
            "(256 at ~55 reviews/s on a 2-core CPU is ~5 s of work; larger batches gain ~10% without a model)."
        ),
    )
    max_wait: float = Field(default=0.5, gt=0, description="Seconds to wait for a batch to fill.")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description=(
            "Event loop of the faust engine: uvloop (about a tenth more no-model throughput on 2 cores, "
            "stream/README.md) when it is installed, else asyncio's own."
        ),
    )
    overlap_writes: bool = Field(
        default=False,
        description=(
            "Batch engine: write batch N to Postgres while batch N+1 is validated and scored (offsets still "
            "commit only after the write). Off: measured no gain on 2 cores (stream/README.md); try it on GPUs."
        ),
    )
    max_batch_tokens: int = Field(
        default=16_384, ge=64, description="Token budget of one model sub-batch (sum of padded lengths)."
    )
    sink_method: Literal["copy", "insert"] = Field(
        default="copy",
        description="How a batch reaches Postgres: COPY into a staging table + merge, or one multi-row INSERT.",
    )
    max_text_chars: int = Field(
        default=MAX_TEXT_CHARS,
        ge=1,
        le=MAX_TEXT_CHARS,
        description=(
            "Longest review text scored; longer messages are dead-lettered as too_long. At most the message "
            "contract's own limit, which refuses longer texts as invalid."
        ),
    )
    retry_initial: float = Field(default=0.2, gt=0, description="First backoff of a transient failure (s).")
    retry_max: float = Field(default=10.0, gt=0, description="Longest backoff between retries (s).")
    web_port: int = Field(
        default=6066, ge=0, le=65535, description="Port of the worker's /metrics, /healthz and /livez."
    )
    web_host: str = Field(default="127.0.0.1", description="Bind address of the worker's metrics server.")
    max_sub_batch: int = Field(default=64, ge=1, description="Most reviews in one model call within a batch.")
    commit_interval: float = Field(
        default=1.0, gt=0, description="Seconds between Kafka offset commits (only acked, stored offsets)."
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long the in-flight batch may take to land before it is left."
    )
    search_indexer: bool = Field(
        default=True,
        description=(
            "Keep the full-text search table current from this worker (off: another worker, or "
            "'reviewscore search-index --follow', must; ?q= finds a review only once it is indexed)."
        ),
    )
    search_batch: int = Field(default=2000, ge=1, description="Rows the search indexer writes per transaction.")
    search_max_lag: float = Field(
        default=30.0,
        ge=0,
        description=(
            "While the stream has a backlog the search indexer waits, so a burst is scored at full speed; "
            "this is how long (s) the oldest unindexed row may wait before it indexes anyway."
        ),
    )
    scorer: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description=(
            "'module:factory' returning a Scorer, used instead of model.load_scorer (benchmarks, tests). "
            "Unset: the model at MODEL_PATH / --model."
        ),
    )


@cached
def get_stream_settings() -> StreamSettings:
    return StreamSettings()
