"""mes-console trading engine.

The engine holds everything that trades: data, sessions, features, models, risk, execution,
simulation and the broker adapters. It never imports the user interface (``textual``, ``rich``,
``mes_console`` or ``screens``); a test in ``tests/test_import_hygiene.py`` enforces that.
"""

__version__ = "0.1.0"
