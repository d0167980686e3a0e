"""Contract specs (CME), month codes, ProjectX ids (EP/ENQ roots), front month and roll dates."""

from __future__ import annotations

from datetime import date

import pytest

from engine.instruments import (
    Contract, InstrumentError, front_month, parse_cme_ticker, parse_px_contract_id, roll_schedule,
    spec, third_friday,
)


def test_specs_match_cme() -> None:
    mes, es, mnq, nq = spec("MES"), spec("es"), spec("MNQ"), spec("NQ")
    assert (mes.tick_size, mes.tick_value, mes.point_value) == (0.25, 1.25, 5.0)
    assert (es.tick_value, es.point_value) == (12.5, 50.0)
    assert (mnq.tick_value, nq.tick_value) == (0.5, 5.0)
    for s in (mes, es, mnq, nq):
        assert s.tick_value == pytest.approx(s.tick_size * s.point_value)
    assert mes.ticks_to_dollars(8) == 10.0  # 8-tick stop = $10 per MES contract
    assert mes.round_price(5000.13) == 5000.25 and mes.round_price(5000.12) == 5000.0
    with pytest.raises(InstrumentError, match="unknown instrument 'XYZ'"):
        spec("XYZ")


def test_projectx_ids_use_px_roots() -> None:
    assert Contract("MES", 2025, 12).px_contract_id == "CON.F.US.MES.Z25"
    assert Contract("ES", 2026, 3).px_contract_id == "CON.F.US.EP.H26"
    assert Contract("NQ", 2025, 9).px_contract_id == "CON.F.US.ENQ.U25"
    assert parse_px_contract_id("CON.F.US.EP.Z25") == Contract("ES", 2025, 12)
    assert spec("MES").px_symbol_id() == "F.US.MES"
    with pytest.raises(InstrumentError, match="malformed"):
        parse_px_contract_id("CON.F.US.MES.Z2025")
    assert parse_cme_ticker("ESZ5", 2025) == Contract("ES", 2025, 12)
    assert parse_cme_ticker("MESH6", 2025) == Contract("MES", 2026, 3)


def test_expiry_and_roll() -> None:
    assert third_friday(2025, 12) == date(2025, 12, 19)
    assert Contract("MES", 2025, 9).expiry == date(2025, 9, 19)
    assert Contract("MES", 2025, 9).roll == date(2025, 9, 11)  # Thursday of the week before
    assert front_month("MES", date(2025, 9, 10)) == Contract("MES", 2025, 9)
    assert front_month("MES", date(2025, 9, 11)) == Contract("MES", 2025, 12)
    assert front_month("MES", date(2025, 12, 20)) == Contract("MES", 2026, 3)
    sched = roll_schedule("MES", date(2025, 1, 1), date(2025, 12, 31))
    assert [c.code for _, c in sched] == ["H", "M", "U", "Z", "H"]
    assert sched[1][0] == date(2025, 3, 13)
