"""A deployed site's own table, before and after the federation's preprocessing.

``accord participant --data csv:PATH`` cannot encode its rows on its own: scaled
with its own mean and spread, and one-hot encoded with its own levels, the same
features would mean different things at different sites (and a site missing a
level would send an update of another shape). So it loads a :class:`SiteTable`
(cleaned rows and labels, no statistic applied) and waits for the coordinator:

1. the ``profile`` stage (:class:`PrepareRequest`: the federation's seed, holdout
   fraction and the site's position in the roster) splits the rows into train and
   holdout exactly as the simulated twin of this site would
   (:func:`~accord.data.federation.holdout_split`) and answers with a
   :class:`~accord.data.profile.SiteProfile` of the training rows;
2. the ``encoding`` stage carries the fitted encoder, with which the site encodes
   its train and holdout rows (:meth:`SiteTable.encode`) before any training.

Nothing else about the rows leaves the site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData, DatasetInfo
from accord.data.datasets import Table
from accord.data.federation import holdout_split
from accord.data.handshake import PrepareRequest
from accord.data.preprocess import Encoder, SufficientStats, extract_features
from accord.data.profile import SiteProfile
from accord.errors import DatasetError

__all__ = ["SiteTable"]


@dataclass(frozen=True)
class SiteTable:
    """A site's cleaned rows and labels, waiting for the federation's encoder."""

    name: str
    table: Table
    labels: npt.NDArray[np.int64]

    def split(
        self, request: PrepareRequest
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(train, holdout) row indices, as the simulation splits this site."""
        return holdout_split(
            self.labels, request.holdout_fraction, request.seed, request.index
        )

    def profile(self, request: PrepareRequest) -> SiteProfile:
        """Statistics of the training rows, and the levels of the table."""
        train, _ = self.split(request)
        if len(train) == 0:
            raise DatasetError(f"{self.name} has no training rows")
        features = extract_features(self.table)
        stats = SufficientStats.of(features.rows(train).numeric)
        numeric = {
            name: (
                float(stats.count[j]),
                float(stats.total[j]),
                float(stats.total_sq[j]),
            )
            for j, name in enumerate(features.numeric_names)
        }
        return SiteProfile(
            classes=self.table.spec.classes,
            numeric=numeric,
            categorical={col: tuple(levels) for col, levels in features.levels},
            train_rows=len(train),
        )

    def encode(
        self, encoder: Encoder, request: PrepareRequest
    ) -> tuple[DatasetInfo, ArrayData, ArrayData]:
        """The site's info, train and holdout data under the federation's encoder."""
        features = extract_features(encoder.aligned(self.table))
        train, held = self.split(request)
        names = encoder.feature_names
        info = DatasetInfo(
            self.table.spec.name, (len(names),), self.table.spec.classes, names
        )
        return (
            info,
            ArrayData(encoder.transform(features.rows(train)), self.labels[train]),
            ArrayData(encoder.transform(features.rows(held)), self.labels[held]),
        )
