"""Long-tail baselines that complement GIT: losses, fixed classifier heads, class hierarchies, re-sampling.

* :mod:`~gitaug.longtail.losses` -- logit adjustment, LDAM+DRW, Balanced BCE (LiVT);
* :mod:`~gitaug.longtail.heads` -- fixed simplex-ETF and Hierarchy-Aware Frame (HAFrame) heads;
* :mod:`~gitaug.longtail.hierarchy` -- class trees, distance matrices and mistake severity;
* :mod:`~gitaug.longtail.resampling` -- class-balanced and deferred (DRS) re-sampling;
* :mod:`~gitaug.longtail.classifiers` -- the small ResNet the example and the benchmarks train.

The old paths (``gitaug.losses``, ``gitaug.heads``, ...) still import the same modules.
"""

from . import classifiers, heads, hierarchy, losses, resampling

__all__ = ["losses", "heads", "hierarchy", "resampling", "classifiers"]
