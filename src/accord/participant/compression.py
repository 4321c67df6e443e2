"""``[compression]`` at a deployed site: compress the update before it leaves.

The coordinator declares the method with each train task
(:class:`~accord.transforms.compression.Declared`, under ``OPTION_KEY``); the site
encodes its update with the same pure code a simulated site uses
(:mod:`accord.transforms.compression`), drawing its stochastic rounding from the
same seed (the run's seed, the round and the site's name), so a deployed run
gives the simulation's model bit for bit.

Top-k's error-feedback residual, and its momentum-correction velocity when the
coordinator declares ``momentum``, are the site's state, like SCAFFOLD's control
variate: with a ``state_dir`` they are written to
``state_dir/compression/<run>/<site>/residual-<round>.f64`` and
``velocity-<round>.f64`` (raw little-endian float64, read back with
:func:`numpy.frombuffer`, never unpickled) after each round's update is encoded,
and a restarted participant carries on from the newest files before the round it
trains. A file of the wrong size (another model) is refused with its path. Without
a ``state_dir`` they live in memory. A warm-up round's top-k density is derived
from the declaration and the round (:meth:`Declared.round_fraction`), as the
coordinator derives it to decode.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accord.errors import ConfigError
from accord.params import Params
from accord.task.personal_state import FileStore
from accord.task.site_folder import site_folder
from accord.transforms.compression import Compressor, Declared

__all__ = ["SiteCompression"]

logger = logging.getLogger(__name__)

_DTYPE = np.dtype("<f8")
_KEEP = 2  # residual files kept per site (the newest, and the one before)


class SiteCompression:
    """One participant's compressors, by run, with top-k's residual kept on disk."""

    def __init__(self, state_dir: Path | None) -> None:
        self._state_dir = state_dir
        self._memory: dict[str, Compressor] = {}

    def _folder(self, run_id: str, site: str) -> Path | None:
        if self._state_dir is None:
            return None
        run = FileStore.for_run(self._state_dir, run_id).directory.name
        return self._state_dir / "compression" / run / site_folder(site)

    def compress(
        self, declared: Declared, run_id: str, site: str, round_number: int, out: Params
    ) -> bytes:
        """Encode ``out`` (the update); ``out`` then holds what the coordinator decodes.

        The payload returned is what the site sends; ``out`` is overwritten with
        its decoded form so that the digest announced is the one the coordinator
        computes after decoding.
        """
        sizes = [a.size for a in out.values()]
        flat = out.flatten().astype(np.float64, copy=False)
        compressor = Compressor(
            declared.method,
            declared.fraction,
            momentum=declared.momentum,
            masking=declared.masking,
        )
        folder = self._folder(run_id, site)
        if declared.method == "topk":
            if folder is None:
                compressor = self._memory.setdefault(f"{run_id}/{site}", compressor)
            else:
                compressor.residual = _load(folder, "residual", round_number, flat.size)
                compressor.velocity = _load(folder, "velocity", round_number, flat.size)
        rng = np.random.default_rng(
            [declared.seed, round_number, zlib.crc32(site.encode())]
        )
        payload, sent = compressor.compress(
            flat, sizes, rng, fraction=declared.round_fraction(round_number)
        )
        if declared.method == "topk" and folder is not None:
            assert compressor.residual is not None  # compress() set it
            _save(folder, "residual", round_number, compressor.residual)
            if compressor.velocity is not None:
                _save(folder, "velocity", round_number, compressor.velocity)
        start = 0
        for array in out.values():
            n = array.size
            array.reshape(-1)[:] = sent[start : start + n]
            start += n
        return payload


def _rounds(folder: Path, kind: str) -> list[int]:
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"{kind}-(\d+)\.f64")
    return sorted(
        int(m.group(1)) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))
    )


def _load(
    folder: Path, kind: str, before: int, size: int
) -> npt.NDArray[np.float64] | None:
    """The newest ``kind`` (residual or velocity) saved before round ``before``."""
    rounds = [r for r in _rounds(folder, kind) if r < before]
    if not rounds:
        return None
    path = folder / f"{kind}-{rounds[-1]}.f64"
    raw = path.read_bytes()
    if len(raw) != size * _DTYPE.itemsize:
        raise ConfigError(
            f"top-k {kind} {path} holds {len(raw) // _DTYPE.itemsize} values; the "
            f"model has {size}: it belongs to another model, remove it"
        )
    values = np.frombuffer(raw, dtype=_DTYPE).astype(np.float64)
    if not np.isfinite(values).all():
        raise ConfigError(f"top-k {kind} {path} has NaN or infinite values")
    logger.info("top-k %s of round %d loaded from %s", kind, rounds[-1], path)
    return values


def _save(
    folder: Path, kind: str, round_number: int, values: npt.NDArray[np.float64]
) -> None:
    """Write ``kind`` after ``round_number`` atomically; drop older files."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{round_number}.f64"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(values.astype(_DTYPE, copy=False).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in _rounds(folder, kind)[:-_KEEP]:
        (folder / f"{kind}-{old}.f64").unlink(missing_ok=True)
