"""The timing split of one request: Server-Timing header, v1 fields, v2 parameters, and a client's parse."""

from __future__ import annotations

import pytest

from serve.timing import STAGES, RequestTiming, parse_server_timing


def _timing() -> RequestTiming:
    t = RequestTiming(start=0.0, decode=0.000125, preprocess=0.0005, queue=0.002, compute=0.0105, encode=0.00004)
    t.batch_sizes = (4, 4, 2)
    t.total = 0.0135
    return t


def test_header_is_standard_server_timing_in_milliseconds():
    header = _timing().header()
    assert header == (
        "decode;dur=0.125, preprocess;dur=0.500, queue;dur=2.000, compute;dur=10.500, encode;dur=0.040, "
        'batch;desc="4 4 2", total;dur=13.500'
    )
    parsed = parse_server_timing(header)
    assert parsed == {
        "decode": 0.125,
        "preprocess": 0.5,
        "queue": 2.0,
        "compute": 10.5,
        "encode": 0.04,
        "batch": "4 4 2",
        "total": 13.5,
    }


def test_v1_fields_and_v2_parameters_carry_the_same_split():
    t = _timing()
    ms = t.ms()
    assert list(ms) == [f"{s}_ms" for s in STAGES] + ["total_ms"]
    assert ms["compute_ms"] == 10.5 and ms["total_ms"] == 13.5
    params = t.parameters()
    assert params["batch_size"] == 4 and params["queue_ms"] == 2.0
    assert all(isinstance(v, (int, float)) for v in params.values())  # the protocol allows scalar parameters only


def test_parse_is_lenient_with_what_other_servers_send():
    assert parse_server_timing(None) == {}
    assert parse_server_timing('cache;desc="hit", db;dur=53, app;dur=bogus, ;dur=1') == {"cache": "hit", "db": 53.0}


def test_finish_stamps_the_total():
    t = RequestTiming()
    assert t.total == 0.0
    assert t.finish().total == pytest.approx(t.total) and t.total > 0
