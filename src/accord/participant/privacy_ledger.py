"""A site's own record of the differential privacy its data has spent, across runs.

The coordinator's store says what each run spent; the site cannot take that on
trust, and a site takes part in many runs. So each site keeps its own ledger, a
JSON file in its identity (or state) folder: every round of record-level DP-SGD it
trained, per run, with the mechanism it ran (noise multiplier, sampling rate,
steps, clip). Epsilon is recomputed from those mechanisms by the site's accountant
(:mod:`accord.privacy.accountant`), per run and in total (all runs composed: they
use the same records); the numbers written next to them are for people reading
the file.

Format (``schema`` ``accord.privacy-ledger/1``)::

    {"schema": "accord.privacy-ledger/1", "accountant": "pld", "delta": 1e-05,
     "runs": {"RUN_ID": {"rounds": {"1": {"noise_multiplier": 1.1,
                                          "sampling_rate": 0.05, "steps": 40,
                                          "clip": 1.0}},
                         "epsilon": 0.61}},
     "total_epsilon": 0.61}

A round is entered once: a round already in the ledger is never trained again
(:mod:`accord.participant.privacy_guard` refuses it), so a resumed run cannot make
the site spend a round twice, nor count it twice. Writes are atomic (a temporary
file in the same folder, fsynced, renamed over the ledger, the folder fsynced): a
crash leaves the old ledger or the new one. A ledger that does not parse, has
another schema or holds an impossible value raises
:class:`~accord.errors.PrivacyLedgerError`; it is never reset silently.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.errors import PrivacyLedgerError

if TYPE_CHECKING:
    from accord.privacy.accountant import AccountantKind

__all__ = ["LEDGER_FILE", "LEDGER_SCHEMA", "PrivacyLedger", "RoundSpend"]

logger = logging.getLogger(__name__)

LEDGER_SCHEMA = "accord.privacy-ledger/1"
#: The ledger's name in a site's identity or state folder.
LEDGER_FILE = "privacy-ledger.json"
#: A ledger is small (a few numbers per round); anything bigger is not one.
_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RoundSpend:
    """The mechanism of one round the site trained with DP-SGD."""

    noise_multiplier: float
    sampling_rate: float
    steps: int
    clip: float

    def to_json(self) -> dict[str, Any]:
        """The round as it is written in the ledger."""
        return {
            "noise_multiplier": self.noise_multiplier,
            "sampling_rate": self.sampling_rate,
            "steps": self.steps,
            "clip": self.clip,
        }


class PrivacyLedger:
    """The ledger file at ``path``, accounted at ``delta`` by ``accountant``."""

    def __init__(
        self,
        path: Path | str,
        *,
        delta: float = 1e-5,
        accountant: AccountantKind = "pld",
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if accountant not in ("pld", "rdp"):
            raise ValueError(f"unknown accountant {accountant!r}")
        self.path = Path(path)
        self.delta = float(delta)
        self.accountant = accountant
        self._runs: dict[str, dict[int, RoundSpend]] = self._load()

    @property
    def runs(self) -> Mapping[str, Mapping[int, RoundSpend]]:
        """Every run's rounds, as recorded."""
        return self._runs

    def has(self, run: str, number: int) -> bool:
        """Whether round ``number`` of ``run`` was already trained (and counted)."""
        return number in self._runs.get(run, {})

    def epsilon(
        self, run: str | None = None, *, extra: RoundSpend | None = None
    ) -> float:
        """Epsilon of ``run`` (None: of every run together), plus ``extra`` if given."""
        from accord.privacy.accountant import DpAccountant
        from accord.privacy.events import dp_sgd_event

        accountant = DpAccountant(self.accountant)
        runs = self._runs.values() if run is None else [self._runs.get(run, {})]
        spends = [s for rounds in runs for s in rounds.values()]
        if extra is not None:
            spends.append(extra)
        for spend in spends:
            if spend.steps:
                accountant.compose(
                    dp_sgd_event(
                        spend.noise_multiplier, spend.sampling_rate, spend.steps
                    )
                )
        return accountant.epsilon(self.delta)

    def record(self, run: str, number: int, spend: RoundSpend) -> None:
        """Enter round ``number`` of ``run`` and write the ledger durably."""
        if self.has(run, number):
            raise PrivacyLedgerError(
                f"round {number} of run {run} is already in the privacy ledger "
                f"{self.path}; a round is trained and counted once",
                path=str(self.path),
            )
        self._runs.setdefault(run, {})[number] = spend
        self._write()
        logger.info(
            "privacy ledger: run %s round %d recorded, epsilon %.4f in total",
            run,
            number,
            self.epsilon(),
        )

    def _document(self) -> dict[str, Any]:
        return {
            "schema": LEDGER_SCHEMA,
            "accountant": self.accountant,
            "delta": self.delta,
            "runs": {
                run: {
                    "rounds": {str(n): s.to_json() for n, s in sorted(rounds.items())},
                    "epsilon": self.epsilon(run),
                }
                for run, rounds in self._runs.items()
            },
            "total_epsilon": self.epsilon(),
        }

    def _write(self) -> None:
        text = json.dumps(self._document(), indent=2, sort_keys=True) + "\n"
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ledger-", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise PrivacyLedgerError(
                f"cannot write the privacy ledger {self.path}: {exc.strerror or exc}; "
                "the round was not trained. Make the folder writable",
                path=str(self.path),
            ) from None

    def _load(self) -> dict[str, dict[int, RoundSpend]]:
        if not self.path.exists():
            return {}
        try:
            with self.path.open("rb") as f:
                raw = f.read(_MAX_BYTES + 1)
            if len(raw) > _MAX_BYTES:
                raise ValueError(f"it is over {_MAX_BYTES} bytes")
            return _parse(json.loads(raw.decode("utf-8")), self.accountant, self.delta)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise PrivacyLedgerError(
                f"the privacy ledger {self.path} is unusable ({exc}). It records the "
                "epsilon this site has spent, so accord does not reset it: restore "
                "it from a backup, or move it aside only if you accept forgetting "
                "what was spent",
                path=str(self.path),
            ) from None


def _number(value: object, what: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is not a number")
    v = float(value)
    if not (math.isfinite(v) and low < v <= high):
        raise ValueError(f"{what} {v!r} is out of range")
    return v


def _parse(
    doc: object, accountant: str, delta: float
) -> dict[str, dict[int, RoundSpend]]:
    """The runs of a ledger document; ValueError naming what is wrong."""
    if not isinstance(doc, dict) or doc.get("schema") != LEDGER_SCHEMA:
        raise ValueError(f"its schema is not {LEDGER_SCHEMA!r}")
    if doc.get("accountant") != accountant or doc.get("delta") != delta:
        raise ValueError(
            f"it was kept with accountant {doc.get('accountant')!r} at delta "
            f"{doc.get('delta')!r}, not {accountant!r} at {delta!r}; keep the "
            "site's --delta the same, or start a ledger per setting"
        )
    runs = doc.get("runs")
    if not isinstance(runs, dict):
        raise ValueError("'runs' is not an object")
    out: dict[str, dict[int, RoundSpend]] = {}
    for run, entry in runs.items():
        rounds = entry.get("rounds") if isinstance(entry, dict) else None
        if not isinstance(rounds, dict):
            raise ValueError(f"run {run!r} has no 'rounds' object")
        parsed: dict[int, RoundSpend] = {}
        for key, spend in rounds.items():
            if not (isinstance(key, str) and key.isdigit() and int(key) >= 1):
                raise ValueError(f"run {run!r} has a round {key!r}")
            if not isinstance(spend, dict) or set(spend) != {
                "noise_multiplier",
                "sampling_rate",
                "steps",
                "clip",
            }:
                raise ValueError(f"round {key} of run {run!r} is malformed")
            steps = spend["steps"]
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
                raise ValueError(f"round {key} of run {run!r} has steps {steps!r}")
            parsed[int(key)] = RoundSpend(
                noise_multiplier=_number(
                    spend["noise_multiplier"], "a noise multiplier", low=0, high=1e6
                ),
                sampling_rate=_number(
                    spend["sampling_rate"], "a sampling rate", low=0, high=1
                ),
                steps=steps,
                clip=_number(spend["clip"], "a clip", low=0, high=math.inf),
            )
        out[str(run)] = parsed
    return out
