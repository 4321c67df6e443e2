"""Differential privacy: clipping, secure Gaussian noise, accounting and budgets.

Pure (numpy and ``dp-accounting``; no torch, grpc or SQL: a test checks it), so
that the coordinator, the sites and the simulation share one implementation.
Importing this package loads only numpy; the accounting modules, which need the
``privacy`` extra (``pip install 'accord[privacy]'``), are imported by name:

- :mod:`accord.privacy.clipping`: L2 clipping of an update or of per-example
  gradients (the sensitivity bound);
- :mod:`accord.privacy.noise`: Gaussian noise from the OS's CSPRNG, snapped to a
  grid against floating-point attacks; seeded only in tests;
- :mod:`accord.privacy.adaptive_clip`: the clip that follows a quantile of the
  update norms (Andrew et al. 2021);
- :mod:`accord.privacy.events`: the DpEvent each mechanism declares;
- :mod:`accord.privacy.accountant`: PLD (default) and RDP accountants fed with
  those events;
- :mod:`accord.privacy.calibration`: target epsilon -> noise multiplier;
- :mod:`accord.privacy.skellam`: the Skellam noise sites add inside secure
  aggregation (distributed noise), its RDP curve and tail bound (numpy only);
- :mod:`accord.privacy.distributed`: the Skellam accountant and its calibration;
- :mod:`accord.privacy.budget`: the check that stops a run before it overspends;
- :mod:`accord.privacy.release`: Laplace or (analytic) Gaussian noise for a one-off
  release of counts and sums, such as a site's data profile (numpy only);
- :mod:`accord.privacy.dpsgd`: record-level DP-SGD: the plan a round declares to a
  site, Poisson sampling and the noisy clipped gradient in numpy.

``docs/privacy.md`` says what each level protects and how epsilon is computed.
"""

from accord.privacy.adaptive_clip import AdaptiveClip
from accord.privacy.clipping import Clipped, clip_per_example, clip_update, l2_norm
from accord.privacy.noise import NoiseSource, add_gaussian, grid_step

__all__ = [
    "AdaptiveClip",
    "Clipped",
    "NoiseSource",
    "add_gaussian",
    "clip_per_example",
    "clip_update",
    "grid_step",
    "l2_norm",
]
