"""Broker layer: the ProjectX Gateway (TopstepX) client, its real-time hubs and a faithful fake.

``engine.broker.projectx`` holds the REST client (:class:`~engine.broker.projectx.rest.ProjectXClient`),
the SignalR hubs (:mod:`engine.broker.projectx.hubs`), the wire enums, models and typed errors.
``engine.broker.fake`` holds the fake gateway server used by tests, demos and paper trading.
Wire facts: ``../shared/reference/projectx-api.md``; behaviour summary: ``specs/projectx.md``.
"""
