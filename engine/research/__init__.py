"""Research loop: parameter search on Optuna and overfitting measures (R-BT-6).

* :mod:`engine.research.overfit` — deflated Sharpe ratio and the probability of backtest
  overfitting by combinatorially symmetric cross-validation (Bailey & López de Prado).
* :mod:`engine.research.optimize` — the study: search space, trials in the backtest's research
  mode on the validation window, the held-out report, the best parameters as a config file.
"""
