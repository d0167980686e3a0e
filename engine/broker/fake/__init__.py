"""A faithful fake ProjectX gateway (R-PX-3; reference §9): REST + both SignalR hubs over
WebSockets, a matching engine fed by historical bars, and fault injection per test.

``FakeGateway`` (server.py) is the entry point; ``FakeExchange`` (exchange.py) holds accounts,
orders, positions, trades and the replayed market; ``Faults`` (faults.py) the switches."""

from engine.broker.fake.exchange import FakeExchange, load_bars_frame  # noqa: F401
from engine.broker.fake.faults import Faults  # noqa: F401
from engine.broker.fake.server import FakeGateway  # noqa: F401
