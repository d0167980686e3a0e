"""The data pipeline (REQUIREMENTS §1, R-DATA-1 … R-DATA-6).

Load (:func:`load_bars`, :func:`load_ticks` + :func:`ticks_to_bars`), validate
(:func:`validate` → :class:`ValidationReport`; :func:`check_bars`, the gate every consumer
passes), label sessions (:func:`session_labels`,
:func:`filter_session`), resample (:func:`resample`), build the 3-class target
(:func:`make_target`), save (:func:`save_bars`) and download (:mod:`engine.data.download`).
Every failure is a :class:`DataError` naming the file, row and column where there is one.
"""

from engine.data.bars import NS, Bars
from engine.data.errors import DataError
from engine.data.io import (available_memory, estimate_load_bytes, infer_bar_ns, load_bars,
                            load_ticks, require_clean_rows, save_bars, ticks_to_bars)
from engine.data.resample import MAX_BAR_NS, format_bar_size, parse_bar_size, resample
from engine.data.sessions import filter_session, session_labels
from engine.data.target import (DOWN, FLAT, NO_LABEL, UP, class_balance, make_target,
                                target_lookahead_bars)
from engine.data.validate import KINDS, SEVERITY, ValidationReport, validate
from engine.data.gate import DataRefused, GateResult, check_bars

__all__ = [
    "NS", "Bars", "DataError", "available_memory", "estimate_load_bytes", "infer_bar_ns",
    "load_bars", "load_ticks", "require_clean_rows", "save_bars", "ticks_to_bars", "MAX_BAR_NS",
    "format_bar_size", "parse_bar_size", "resample", "filter_session", "session_labels", "DOWN",
    "FLAT", "NO_LABEL", "UP", "class_balance", "make_target", "target_lookahead_bars", "KINDS",
    "SEVERITY", "ValidationReport", "validate", "DataRefused", "GateResult", "check_bars",
]
