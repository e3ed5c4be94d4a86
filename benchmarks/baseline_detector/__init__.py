"""The detector as it was before issues #9 and #11 (commit b721e31): the benchmark's baseline.

Unchanged except for its imports; not part of the package. ``benchmarks/detector.py``
measures it beside the current detector in the same run.
"""

from baseline_detector.core import StuckDetector

__all__ = ["StuckDetector"]
