"""Execution: order state table, signals, bracket/OCO management, positions and reconciliation."""
