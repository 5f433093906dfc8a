"""The analyzer the demo and the placement benchmark rank with.

``make_analyzer()`` is the real ``shadow_service.analysis.Analyzer`` with
its defaults; ``analyzer_name()`` is how result files name it.
"""

from shadow_service.analysis import analyzer as analyzer_mod


def make_analyzer():
    """The analyzer used by the demo and the benchmarks."""
    return analyzer_mod.Analyzer()


def analyzer_name(analyzer):
    """How results name the ranker that produced them."""
    return getattr(analyzer, 'name', None) or '%s.%s' % (
        type(analyzer).__module__, type(analyzer).__name__)
