"""The fake gateway validates like the real one (issue 15 item 8): bodies that do not bind to the
endpoint's DTO answer HTTP 400 problem details naming the field (never a 500 text page), business
rules answer ProjectX envelopes (sizes within the account's limit, prices > 0 on the tick grid),
and no request can stop the market replay."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.px_fixtures import gateway_and_client


async def _post(gw, px, ep: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, str) else json.dumps(body)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gw.base_url}/api/{ep}", data=data,
                          headers={"Authorization": f"Bearer {px.current_token()}",
                                   "Content-Type": "application/json"}) as r:
            return r.status, json.loads(await r.text())


async def _entry(gw, px, acct, cid, **kw):
    body = {"accountId": acct, "contractId": cid, "type": 1, "side": 0, "size": 1,
            "limitPrice": 1000.0, "customTag": kw.pop("tag", "t-lim"), **kw}
    return await _post(gw, px, "Order/place", body)


@pytest.mark.parametrize("ep, body, field", [
    ("Order/place", {"accountId": "1001", "contractId": "X", "type": 1, "side": 0, "size": 1}, "$.accountId"),
    ("Order/place", {"accountId": 1001, "contractId": "X", "type": 1, "side": 0, "size": 1.5}, "$.size"),
    ("Order/place", {"accountId": 1001, "contractId": "X", "type": 1, "side": 0, "size": 2**63}, "$.size"),
    ("Order/place", {"accountId": 1001, "contractId": "X", "type": 2, "side": 0, "size": 1,
                     "stopLossBracket": {"ticks": "x", "type": 4}}, "$.stopLossBracket"),
    ("Order/modify", {"accountId": 1001, "orderId": 1, "limitPrice": "zzz"}, "$.limitPrice"),
    ("Order/modify", {"accountId": 1001, "orderId": 1, "limitPrice": "NaN"}, "$.limitPrice"),
    ("Order/cancel", {"accountId": 1001}, "$.orderId"),
    ("Trade/search", {"accountId": 1001, "startTimestamp": "yesterday"}, "$.startTimestamp"),
    ("History/retrieveBars", {"contractId": 5}, "$.contractId"),
    ("Order/place", [1, 2, 3], "$"),
])
async def test_bad_types_answer_400_problem_details(topstepx_path, ep, body, field):
    async with gateway_and_client(topstepx_path) as (gw, px):
        await px.login()
        status, doc = await _post(gw, px, ep, body)
        assert status == 400 and doc["status"] == 400 and field in doc["errors"], doc
        assert gw.refused == 1


async def test_nan_literal_and_broken_json_are_refused(topstepx_path):
    async with gateway_and_client(topstepx_path) as (gw, px):
        await px.login()
        status, doc = await _post(gw, px, "Order/modify", '{"accountId": 1001, "orderId": 1, "limitPrice": NaN}')
        assert status == 400 and "$.limitPrice" in doc["errors"]
        status, doc = await _post(gw, px, "Order/modify", '{"accountId": 1001,')
        assert status == 400 and "$" in doc["errors"]
        # issue 22 item 7: a deeply nested body is a JSON 400 (not a plain 500 from a RecursionError)
        for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 70 + "1" + "}" * 70):
            status, doc = await _post(gw, px, "Order/cancel", deep)
            assert status == 400 and "$" in doc["errors"], doc
        status, doc = await _post(gw, px, "Order/place", {"accountId": 1001, "contractId": "X", "type": 2, "side": 0,
                                                          "size": 1, "customTag": "x" * 100_000})
        assert status == 400 and "$.customTag" in doc["errors"], doc


async def test_business_rules_and_the_replay_survives(topstepx_path):
    async with gateway_and_client(topstepx_path, gw_kwargs={"speed": 6000.0}) as (gw, px):
        await px.login()
        ex = gw.exchange
        acct, cid = ex.account["id"], ex.contract_id
        for size in (10**9, 51):
            status, doc = await _entry(gw, px, acct, cid, size=size, tag=f"big{size}")
            assert status == 200 and doc["success"] is False and doc["errorCode"] == 2 and "size" in doc["errorMessage"]
        for price in (0.0, -5.0, 6000.13):
            status, doc = await _entry(gw, px, acct, cid, limitPrice=price, tag=f"p{price}")
            assert (status, doc["errorCode"], doc["errorMessage"]) == (200, 2, "Invalid price")
        status, doc = await _entry(gw, px, acct, cid)
        assert doc["success"] and doc["orderId"]
        oid = doc["orderId"]
        for bad in ({"limitPrice": 1000.1}, {"limitPrice": -1.0}, {"size": 0}, {"size": 10**6},
                    {"stopPrice": 1000.0}):
            status, doc = await _post(gw, px, "Order/modify", {"accountId": acct, "orderId": oid, **bad})
            assert status == 200 and doc["errorCode"] == 2, (bad, doc)
        # the modify that killed the replay: refused, and the market keeps stepping
        status, doc = await _post(gw, px, "Order/modify", {"accountId": acct, "orderId": oid, "limitPrice": "zzz"})
        assert status == 400
        i0 = ex.market.i
        await asyncio.sleep(0.3)
        assert ex.market.i > i0 and gw.replay_errors == 0
        assert ex.orders[oid]["limitPrice"] == 1000.0
        assert ex.account["balance"] == 50_000.0 and not ex.trades
        # a position cannot grow past the account's limit, a reducing order can
        status, doc = await _post(gw, px, "Order/place", {"accountId": acct, "contractId": cid, "type": 2,
                                                          "side": 0, "size": 50, "customTag": "m50"})
        assert doc["success"], doc
        status, doc = await _post(gw, px, "Order/place", {"accountId": acct, "contractId": cid, "type": 2,
                                                          "side": 0, "size": 1, "customTag": "m51"})
        assert doc["errorCode"] == 2 and "maximum position" in doc["errorMessage"]
        status, doc = await _post(gw, px, "Position/closeContract", {"accountId": acct, "contractId": cid})
        assert doc["success"], doc
