"""kayenta_py.backtest."""
