"""Predictive performance analysis for nova-shadow.

Pure code: arrays and plain dicts in, results out. Nothing in this package
does I/O, reads configuration globals or talks to a cloud. The entry point
for callers is :class:`shadow_service.analysis.analyzer.Analyzer`.
"""

from shadow_service.analysis.analyzer import Analyzer  # noqa: E402,F401
