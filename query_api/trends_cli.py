"""``reviewscore trends``: the brands whose sentiment moved most, and an alert for cron.

Reads what ``GET /brands/trends`` serves, straight from the database as the reader. With
``--alert-drop`` it is a watch: exit 3 and a webhook post when a brand fell that far, so a cron
entry or a Kubernetes CronJob (deploy/k8s/brand-alerts-cronjob.yaml) sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, cast

import typer

if TYPE_CHECKING:
    from query_api.queries import Statement
    from query_api.schemas import BrandTrend

ALERT_EXIT = 3
"""``reviewscore trends --alert-drop`` exit status when a brand fell past it (1 and 2 are errors)."""


def _parse_end(value: str | None) -> datetime | None:
    """As the API reads ``end`` (``core.iso_time.IsoDateTime``: ISO-8601, never a bare number), in UTC."""
    if value is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    from core.iso_time import IsoDateTime

    try:
        moment = TypeAdapter(IsoDateTime).validate_python(value)
    except ValidationError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 date-time, e.g. 2026-11-24T00:00:00Z") from None
    # In UTC: the windows are printed in UTC, and an offset's midnight is not UTC's.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_trends(*statements: Statement) -> list[list[BrandTrend]]:
    """Each statement's brand trends, over one connection, as the reader where DATABASE_READONLY_URL
    is set; exit 2 on a database error."""
    from core.config import get_database_settings
    from core.db import is_undefined_table, make_engine
    from core.runtime import ensure_infra
    from query_api.trends import brand_trends

    try:
        # The reader's URL alone is enough, as for `reviewscore api` (the CronJob has no other).
        needs_writer_url = get_database_settings().readonly_url is None
        with ensure_infra(database=needs_writer_url, kafka=False, start_embedded=False):
            engine = make_engine(get_database_settings(), read_only=True, application_name="reviewscore-trends")
            try:
                with engine.connect() as connection:
                    return [brand_trends(connection.execute(statement)) for statement in statements]
            finally:
                engine.dispose()
    except Exception as exc:  # a refused connection, no infra, a timeout: said in one line
        if is_undefined_table(exc):  # a database never migrated: the CLI's main() says to migrate
            raise
        typer.echo(f"error: could not read the trends: {exc}".splitlines()[0], err=True)
        raise typer.Exit(2) from exc


def _table(brands: list[BrandTrend]) -> str:
    header = f"{'brand':30} {'reviews':>15} {'mean score':>13} {'change':>7} {'negative':>14}"
    lines = [header]
    for b in brands:
        reviews = f"{b.current.count} ({b.previous.count})"
        means = f"{b.current.mean_score:.2f} ({b.previous.mean_score:.2f})"
        negative = f"{b.current.negative_share:.0%} ({b.negative_share_change * 100:+.0f} pt)"
        lines.append(f"{b.brand[:30]:30} {reviews:>15} {means:>13} {b.change:+7.2f} {negative:>14}")
    return "\n".join(lines)


def trends(
    days: Annotated[int, typer.Option(min=1, max=366, help="Length of each window in days.")] = 7,
    end: Annotated[
        str | None,
        typer.Option(help="End of the current window (ISO-8601, exclusive; naive = UTC). Default: next UTC midnight."),
    ] = None,
    whole_days: Annotated[
        bool,
        typer.Option(
            "--whole-days",
            help="End at the last UTC midnight instead: today, still filling, is left out of the current window.",
        ),
    ] = False,
    source: Annotated[str | None, typer.Option(help="Only reviews from this source.")] = None,
    brand: Annotated[str | None, typer.Option(help="Only this brand.")] = None,
    lang: Annotated[str | None, typer.Option(help="Only reviews in this language (en matches en-GB).")] = None,
    time_field: Annotated[
        str, typer.Option(help="created_on (when scored) or published_at (when written).")
    ] = "created_on",
    min_count: Annotated[
        int, typer.Option(min=1, help="Leave out brands with fewer reviews than this in either window.")
    ] = 5,
    order: Annotated[str, typer.Option(help="falling (largest drops first) or rising.")] = "falling",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most brands listed.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer of GET /brands/trends as JSON.")] = False,
    alert_drop: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help=f"Alert when a brand's mean score fell by this much or more (e.g. 0.1): exit {ALERT_EXIT}.",
        ),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            help=(
                "With --alert-drop: POST the alert as JSON ({text, alert_id, alerts}) to this URL. "
                "Default: API_ALERT_WEBHOOK."
            ),
            show_default=False,
        ),
    ] = None,
    webhook_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the webhook.")] = 10.0,
) -> None:
    """The brands whose mean sentiment moved most: the last DAYS days against the DAYS before.

    Reads the database as GET /brands/trends does. For a cron job or a CI step that watches
    brands: with --alert-drop the command exits 3 when a brand fell that far (and posts the alert
    to --webhook or API_ALERT_WEBHOOK); 0 when none did; 2 on an error, a webhook that did not take the alert included.
    """
    from query_api.filters import Filters
    from query_api.queries import TimeField, TrendOrder, next_utc_midnight, trend_windows, trends_statement
    from query_api.trends import alert_key, alert_text, days_text
    from query_api.trends import answer as trends_answer
    from query_api.webhook import WebhookError, check_webhook_url, post_webhook

    if time_field not in ("created_on", "published_at"):
        raise typer.BadParameter("must be created_on or published_at", param_hint="--time-field")
    if order not in ("falling", "rising"):
        raise typer.BadParameter("must be falling or rising", param_hint="--order")
    if webhook and alert_drop is None:
        raise typer.BadParameter("posts alerts only: add --alert-drop", param_hint="--webhook")
    if webhook is None and alert_drop is not None:
        from core.config import get_api_settings

        configured = get_api_settings().alert_webhook
        webhook = configured.get_secret_value() if configured else None
    if webhook is not None:
        try:
            check_webhook_url(webhook)
        except WebhookError as exc:
            typer.echo(f"error: --webhook / API_ALERT_WEBHOOK: {exc}", err=True)
            raise typer.Exit(2) from exc
    field, ranking = cast("TimeField", time_field), cast("TrendOrder", order)
    if end and whole_days:
        raise typer.BadParameter("give --end or --whole-days, not both", param_hint="--whole-days")
    default_end = next_utc_midnight(datetime.now(UTC)) - (timedelta(days=1) if whole_days else timedelta(0))
    try:
        windows = trend_windows(_parse_end(end) or default_end, days)
    except OverflowError:
        raise typer.BadParameter("the windows would start before year 1", param_hint="--end") from None
    filters = Filters(brand=brand, source=source, lang=lang.lower() if lang else None)
    # An alert looks at every brand that fell that far, however many, whatever the listing's order
    # and limit: a second statement on the same connection, with the threshold and no limit.
    statements = [trends_statement(filters, windows, field, min_count, ranking, limit)]
    if alert_drop is not None:
        statements.append(trends_statement(filters, windows, field, min_count, "falling", None, fell_by=alert_drop))
    brands, *falls = _read_trends(*statements)

    if as_json:
        answer = trends_answer(windows, days, field, min_count, ranking, brands)
        typer.echo(answer.model_dump_json(indent=2))
    else:
        typer.echo(
            f"{days_text(days)} from {windows.middle:%Y-%m-%d %H:%M} UTC against the {days_text(days)} before; "
            f"at least {min_count} reviews in each"
        )
        typer.echo(_table(brands) if brands else "no brand has enough reviews in both windows")

    if alert_drop is None:
        return
    alerts = falls[0]  # the brands that fell that far, largest fall first
    if not alerts:
        typer.echo(f"no brand fell by {alert_drop:.2f} or more", err=True)
        return
    text = alert_text(alerts, alert_drop, windows, days)
    typer.echo(text, err=True)
    if webhook:
        try:
            key = alert_key(alerts, alert_drop, windows, field, filters.digest())
            payload = {"text": text, "alert_id": key, "alerts": [b.model_dump(mode="json") for b in alerts]}
            post_webhook(webhook, payload, webhook_timeout, idempotency_key=key)
        except WebhookError as exc:
            typer.echo(f"error: the webhook did not take the alert: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo("alert posted to the webhook", err=True)
    raise typer.Exit(ALERT_EXIT)
