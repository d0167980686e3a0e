"""Textual screens of the operator console (backtest launcher, training, help, confirmations)."""
