"""The shared filters are read by ``read_filters`` in one validation, yet a client sees exactly
what FastAPI's own reading of ``filter_params``'s fourteen declared parameters gave: the same
values, the same refusals, the same documentation."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, Query
from fastapi.testclient import TestClient

from core.config import ApiSettings, DatabaseSettings, KafkaSettings
from query_api.app import create_app
from query_api.errors import install_error_handlers
from query_api.filters import FILTER_NAMES, Filters, filter_params, read_filters
from query_api.openapi import filter_parameters


@pytest.fixture(scope="module")
def both() -> TestClient:
    """``/fastapi`` reads the filters as FastAPI reads declared parameters, ``/read`` as the API does."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fastapi")
    async def by_fastapi(filters: Annotated[Filters, Depends(filter_params)]) -> dict[str, str]:
        return {"filters": repr(filters)}

    @app.get("/read")
    async def by_read_filters(filters: Annotated[Filters, Depends(read_filters)]) -> dict[str, str]:
        return {"filters": repr(filters)}

    # With parameters of the route's own: refused with the filters, in one answer.
    @app.get("/fastapi/{n}")
    async def more_by_fastapi(
        filters: Annotated[Filters, Depends(filter_params)],
        n: int,
        limit: Annotated[int, Query(ge=1)] = 50,
        x_count: Annotated[int | None, Header()] = None,
    ) -> dict[str, str]:
        return {"filters": repr(filters), "more": repr((n, limit, x_count))}

    @app.get("/read/{n}")
    async def more_by_read_filters(
        filters: Annotated[Filters, Depends(read_filters)],
        n: int,
        limit: Annotated[int, Query(ge=1)] = 50,
        x_count: Annotated[int | None, Header()] = None,
    ) -> dict[str, str]:
        return {"filters": repr(filters), "more": repr((n, limit, x_count))}

    return TestClient(app)


ACCEPTED = [
    "",
    "brand=Acme",
    "brand=",
    "brand=%C3%89lan&source=scraper%3Atrustpilot&label=negative",
    "min_score=0&max_score=1",
    "min_score=0.25&max_score=.75",
    "since=2026-11-01T00:00:00Z&until=2026-12-01",
    "since=2026-11-01T02:00:00%2B02:00",
    "published_since=2026-11-01T00:00:00&published_until=2026-11-02T00:00:00-05:00",
    "min_rating=4&max_rating=5",
    "model_version=m-1&lang=EN-gb",
    "q=fast%20delivery",
    "q=%20%20",
    "brand=A&brand=B",  # the last one, as FastAPI reads it (the API refuses the repeat earlier)
    "brand=Acme&unknown=1",
]

REFUSED = [
    "brand=a%00b",
    f"brand={'x' * 257}",
    "source=%00",
    "label=bad",
    "label=Negative",
    "min_score=2",
    "min_score=-0.1",
    "min_score=nan",
    "max_score=inf",
    "min_score=abc",
    "max_score=",
    "since=yesterday",
    "until=2026-13-01",
    "published_since=x&published_until=y",
    "min_rating=0",
    "max_rating=6",
    "min_rating=4.5",
    "min_rating=",
    f"model_version={'m' * 201}",
    "lang=!!",
    "lang=english",
    f"q={'q' * 201}",
    "q=a%00",
    # Several at once: every one is named, in declaration order.
    "q=%00&lang=x&min_score=9&brand=%00&label=x",
    # Contradictions, checked once each value is valid.
    "min_score=0.9&max_score=0.1",
    "min_rating=5&max_rating=1",
    "since=2026-12-01&until=2026-11-01",
    "published_since=2026-12-01&published_until=2026-11-01&since=2026-12-01&until=2026-11-01",
    "since=0001-01-01T00:00:00%2B01:00",
]


@pytest.mark.parametrize("query", ACCEPTED)
def test_accepted_filters_are_read_as_fastapi_reads_them(both: TestClient, query: str) -> None:
    expected = both.get(f"/fastapi?{query}")
    read = both.get(f"/read?{query}")
    assert expected.status_code == 200, expected.text
    assert (read.status_code, read.json()) == (200, expected.json())


@pytest.mark.parametrize("query", REFUSED)
def test_refused_filters_get_fastapis_own_answer(both: TestClient, query: str) -> None:
    expected = both.get(f"/fastapi?{query}")
    read = both.get(f"/read?{query}")
    assert expected.status_code == 422, expected.text
    assert (read.status_code, read.json()) == (422, expected.json())


@pytest.mark.parametrize(
    ("path", "query", "count"),
    [
        ("1", "brand=Acme&limit=3", "2"),
        ("1", "min_score=abc&limit=0", "2"),
        ("x", "label=bad&limit=abc", "many"),
        ("x", "min_rating=9", None),
        ("1", "limit=0", "x"),
        ("2", "min_score=0.9&max_score=0.1&limit=0", None),
    ],
)
def test_the_routes_own_parameters_are_refused_with_the_filters_in_one_answer(
    both: TestClient, path: str, query: str, count: str | None
) -> None:
    headers = {} if count is None else {"x-count": count}
    expected = both.get(f"/fastapi/{path}?{query}", headers=headers)
    read = both.get(f"/read/{path}?{query}", headers=headers)
    assert (read.status_code, read.json()) == (expected.status_code, expected.json())


def test_the_api_names_every_refused_parameter_at_once() -> None:
    settings = DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/none")
    client = TestClient(create_app(ApiSettings(), settings, KafkaSettings(bootstrap_servers=None)))
    answer = client.get("/sentiments/?min_score=abc&limit=0")
    assert answer.status_code == 422
    assert [detail["loc"] for detail in answer.json()["error"]["details"]] == [
        ["query", "min_score"],
        ["query", "limit"],
    ]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    settings = DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/none")
    app = create_app(ApiSettings(), settings, KafkaSettings(bootstrap_servers=None))
    document: dict[str, Any] = app.openapi()
    return document


@pytest.mark.parametrize(
    "path",
    ["/sentiments/", "/sentiments/stats", "/sentiments/export", "/brands", "/brands/trends", "/charts/timeline.svg"],
)
def test_every_endpoint_that_filters_documents_each_filter_as_fastapi_would(openapi: dict[str, Any], path: str) -> None:
    parameters = openapi["paths"][path]["get"]["parameters"]
    documented = {parameter["name"]: parameter for parameter in parameters if parameter["name"] in FILTER_NAMES}
    assert list(documented) == list(FILTER_NAMES)
    assert list(documented.values()) == filter_parameters()
    places = [parameter["in"] for parameter in parameters]
    assert places == sorted(places, key=["path", "query", "header", "cookie"].index)


def test_endpoints_that_do_not_filter_document_no_filter(openapi: dict[str, Any]) -> None:
    by_id = openapi["paths"]["/sentiments/{sentiment_id}"]["get"]
    assert {parameter["name"] for parameter in by_id.get("parameters", [])}.isdisjoint(FILTER_NAMES)
