"""The OpenAPI document: FastAPI's, plus the query parameters a dependency reads for itself.

``read_filters`` takes the request and reads the shared filters off the query string (one
validation instead of fourteen, see ``query_api.filters``), so FastAPI sees no parameters to
document there. They are documented here exactly as FastAPI documents ``filter_params``, whose
declarations the dependency validates against: one source for what is checked and what is shown.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from query_api.deps import dependants
from query_api.filters import Filters, filter_params, read_filters


def filter_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameter objects FastAPI writes for ``filter_params``'s declarations."""
    probe = FastAPI()

    @probe.get("/")
    async def documented(filters: Annotated[Filters, Depends(filter_params)]) -> None:
        del filters

    parameters: list[dict[str, Any]] = probe.openapi()["paths"]["/"]["get"]["parameters"]
    return parameters


def reads_filters(dependant: Dependant) -> bool:
    """Whether ``read_filters`` is among the dependencies of ``dependant``, at any depth."""
    return any(node.call is read_filters for node in dependants(dependant))


def document_filters(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Make ``app.openapi()`` list the filters on every operation of ``routers`` that reads them.

    After the operation's own path and query parameters and before its headers, where FastAPI
    put a dependency's.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        parameters = filter_parameters()
        for router in routers:
            for route in router.routes:
                if not isinstance(route, APIRoute) or not route.include_in_schema or not reads_filters(route.dependant):
                    continue
                for method in route.methods or ():
                    operation = schema["paths"][route.path_format][method.lower()]
                    listed = operation.setdefault("parameters", [])
                    at = sum(1 for parameter in listed if parameter["in"] in ("path", "query"))
                    listed[at:at] = copy.deepcopy(parameters)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
