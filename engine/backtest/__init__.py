"""Event-driven backtest of the trading kernel over bars (R-BT-1 … R-BT-5)."""
