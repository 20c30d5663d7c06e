"""ISO-8601 date-times as the message contract and the API take them: never a bare number.

pydantic's lax datetime reads a number, or a string of digits, as a Unix timestamp: a CSV's
``20261120`` (a compact date) became 1970-08-23 and ``2026`` 33 minutes past the epoch, silently.
The contract and its JSON Schema say ISO-8601 strings, so those are refused with that said.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
EXAMPLE = "e.g. 2026-11-01T00:00:00Z"


def iso_only(value: object) -> object:
    """Refuse what pydantic would read as a Unix timestamp."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # a JSON number
        raise ValueError(f"must be an ISO-8601 date-time string, {EXAMPLE}")
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError(f"must be an ISO-8601 date-time, {EXAMPLE}")
    return value


def named_problem(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """pydantic's parsing, with the wrong part named when it refuses.

    For ``T25:00`` or an offset of ``+99:00`` pydantic says "unexpected extra characters at the
    end of the input", naming neither; ``datetime.fromisoformat`` names them. What is accepted
    stays pydantic's (``fromisoformat`` takes week dates, bare hours, any separator).
    """
    try:
        return handler(value)
    except ValidationError:
        if not isinstance(value, str):
            raise
        try:
            datetime.fromisoformat(value.strip())
        except ValueError as exc:
            why = "the UTC offset must be less than 24 hours" if "offset" in str(exc) else str(exc)
            raise ValueError(f"is not a valid ISO-8601 date-time ({why}), {EXAMPLE}") from None
        raise


IsoDateTime = Annotated[datetime, WrapValidator(named_problem), BeforeValidator(iso_only)]
