"""The benchmarks' own arithmetic and option parsing: what their printed figures stand on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))  # the scripts import their siblings (variants) as a script does


def _script(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


api = _script("api")
pct, cache_on = api.pct, api.cache_on
parse_variant = _script("variants").parse_variant


def test_a_percentile_is_the_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 … 100 ms
    assert pct(values, 0.5) == pytest.approx(50.0)
    assert pct(values, 0.99) == pytest.approx(99.0)  # not the maximum
    assert pct(values, 1.0) == pytest.approx(100.0)
    assert pct([0.007], 0.99) == pytest.approx(7.0)
    assert pct([i / 1000 for i in range(1, 2001)], 0.99) == pytest.approx(1980.0)


def test_a_variant_is_a_label_and_its_settings() -> None:
    assert parse_variant("big:STREAM_MAX_BATCH=4000, STREAM_ENGINE=batch") == (
        "big",
        {"STREAM_MAX_BATCH": "4000", "STREAM_ENGINE": "batch"},
    )
    assert parse_variant("default") == ("default", {})
    assert parse_variant("drop:BENCH_SQL=DROP INDEX a; DROP INDEX b") == (
        "drop",
        {"BENCH_SQL": "DROP INDEX a; DROP INDEX b"},
    )
    sql = "ALTER TABLE sentiments SET (fillfactor=70, autovacuum_enabled=off)"
    assert parse_variant(f"ff:STREAM_ENGINE=batch,BENCH_SQL={sql}") == (
        "ff",
        {"STREAM_ENGINE": "batch", "BENCH_SQL": sql},
    )
    assert parse_variant("low:stream_engine=batch") == ("low", {"stream_engine": "batch"})  # settings ignore case


@pytest.mark.parametrize(
    "spec",
    [
        "x:API_X=a b,c d",  # a value cut at a comma would silently lose its tail
        ":STREAM_ENGINE=batch",
        "x:=1",
        "x:STREAM_ENGINE",
    ],
)
def test_a_variant_that_would_measure_something_else_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="expected LABEL"):
        parse_variant(spec)


def test_a_variants_own_cache_size_decides_whether_it_caches() -> None:
    assert cache_on({}, True) is True
    assert cache_on({}, False) is False
    assert cache_on({"API_READ_CACHE_MB": "0"}, True) is False
    assert cache_on({"API_READ_CACHE_MB": "64"}, False) is True
