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
   its train and holdout rows (:meth:`SiteTable.encode`) before any training,
   and, when asked, profiles its training rows on the fitted scale under the
   request's guard (:meth:`SiteTable.summary`, :mod:`accord.data.summary`).

Under secure aggregation the ``profile`` stage is answered with the site's
columns only (:meth:`SiteTable.columns`), and the statistics
(:meth:`SiteTable.statistics`) go into a secure sum in between. Nothing else about
the rows leaves the site.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData, DatasetInfo
from accord.data.datasets import Table
from accord.data.federation import holdout_split
from accord.data.handshake import PrepareRequest
from accord.data.preprocess import Encoder, SufficientStats, extract_features
from accord.data.profile import SiteColumns, SiteProfile
from accord.data.summary import SiteSummary, summarize
from accord.data.sums import statistics_vector
from accord.errors import DatasetError
from accord.privacy.noise import NoiseSource

__all__ = ["SiteTable"]

logger = logging.getLogger(__name__)


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

    def columns(self, request: PrepareRequest) -> SiteColumns:
        """What the site reveals when its sums go through secure aggregation.

        The levels of a column that ``request`` declares levels for are checked
        here, against them, and not sent: a level outside them raises
        :class:`DatasetError` naming the column (the levels go to the site's log).
        """
        features = extract_features(self.table)
        categorical: dict[str, tuple[str, ...]] = {}
        for column, levels in features.levels:
            declared = request.declared.get(column)
            if declared is None:
                categorical[column] = tuple(levels)
                continue
            extra = sorted(set(levels) - set(declared))
            if extra:
                logger.warning(
                    "column %r holds levels not declared in fed.toml: %s",
                    column,
                    ", ".join(repr(e) for e in extra[:20]),
                )
                raise DatasetError(
                    f"{self.name}'s column {column!r} holds {len(extra)} level(s) "
                    "not among those declared in fed.toml (the participant's log "
                    "output lists them); declare them, or fix the site's data"
                )
            categorical[column] = ()
        return SiteColumns(
            classes=self.table.spec.classes,
            numeric=features.numeric_names,
            categorical=categorical,
        )

    def statistics(
        self, request: PrepareRequest, columns: tuple[str, ...]
    ) -> npt.NDArray[np.float64]:
        """The training rows' statistics over ``columns``, laid out for a secure sum."""
        train, _ = self.split(request)
        if len(train) == 0:
            raise DatasetError(f"{self.name} has no training rows")
        features = extract_features(self.table)
        where = {name: j for j, name in enumerate(features.numeric_names)}
        absent = [c for c in columns if c not in where]
        if absent or len(columns) != len(where):
            raise DatasetError(
                f"the federation sums the numeric columns {list(columns)[:10]}, "
                f"{self.name} has {list(where)[:10]}; every site needs the same"
            )
        # Summed as the plain profile sums them (the same array, the same order of
        # additions), then laid out in the federation's column order.
        stats = SufficientStats.of(features.rows(train).numeric)
        order = np.array([where[c] for c in columns], dtype=np.int64)
        ordered = SufficientStats(
            stats.count[order], stats.total[order], stats.total_sq[order]
        )
        return statistics_vector(ordered, len(train))

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

    def holdout_values(
        self, column: str, request: PrepareRequest
    ) -> npt.NDArray[np.object_]:
        """The holdout rows' raw values of ``column`` (the sensitive attribute).

        Read before encoding, so the column may be a feature or not, as in a
        simulation (:func:`~accord.simulation.holdouts.holdout_groups`).
        """
        if column not in self.table.frame.columns:
            raise DatasetError(
                f"the run's sensitive column {column[:80]!r} is not a column of "
                f"site {self.name!r}'s table; add it, or remove [evaluation] "
                "sensitive from the federation"
            )
        _, held = self.split(request)
        values: npt.NDArray[np.object_] = self.table.frame[column].to_numpy(
            dtype=object
        )[held]
        return values

    def summary(
        self,
        encoder: Encoder,
        request: PrepareRequest,
        *,
        source: NoiseSource | None = None,
    ) -> SiteSummary:
        """The guarded data profile of the training rows (``request.summary``).

        ``source`` draws its DP noise, if the guard asks for any (the OS's CSPRNG
        unless given: seeded only in tests).
        """
        if request.summary is None:
            raise DatasetError("the request asks for no data profile")
        features = extract_features(encoder.aligned(self.table))
        train, _ = self.split(request)
        return summarize(
            features.rows(train),
            self.labels[train],
            self.table.spec.classes,
            encoder,
            request.summary,
            source=source,
        )
