"""The one import of ``dp-accounting``, turned into accord's missing-extra error.

dp-accounting is the optional extra ``privacy``: a federation without DP never
loads it (it pulls in SciPy and absl, about a second of import time).
"""

from __future__ import annotations

from accord.errors import MissingExtraError

try:
    import dp_accounting
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant
except ImportError as exc:  # tested in a subprocess without the extra
    raise MissingExtraError(
        extra="privacy", package="dp-accounting", feature="differential privacy"
    ) from exc

__all__ = [
    "dp_accounting",
    "dp_event",
    "pld_privacy_accountant",
    "rdp_privacy_accountant",
]
