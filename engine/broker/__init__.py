"""Broker layer: the broker-neutral interface of a paper/live session, the ProjectX Gateway
(TopstepX) adapter (client, real-time hubs, venue) and a faithful fake.

``engine.broker.base`` holds :class:`~engine.broker.base.BrokerConnection` (what
:class:`engine.runtime.live.LiveSession` needs from any broker, in engine types) and its market,
fill and reconcile types; the runtime imports nothing else from this package.
``engine.broker.projectx.connection.ProjectXConnection`` is its first adapter.
``engine.broker.projectx`` holds the REST client (:class:`~engine.broker.projectx.rest.ProjectXClient`),
the SignalR hubs (:mod:`engine.broker.projectx.hubs`), the wire enums, models and typed errors.
``engine.broker.fake`` holds the fake gateway server used by tests, demos and paper trading.
Wire facts: ``../shared/reference/projectx-api.md``; behaviour summary: ``specs/projectx.md``.
"""
