"""Panes of the operator console's main screen (R-UI-1)."""
