"""mes-console: the operator console (Textual App, widgets), CLI and runtime wiring."""

from engine import __version__

__all__ = ["__version__"]
