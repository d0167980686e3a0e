"""The embedded demo market (:func:`generate_bars`): seeded, realistic MES bars, no data files."""

from engine.market.generator import GeneratorError, generate_bars

__all__ = ["GeneratorError", "generate_bars"]
