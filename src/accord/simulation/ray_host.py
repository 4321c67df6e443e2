"""The Ray actor of a simulation: hosts its share of the sites, trains and scores them.

:class:`SiteHost` is the Ray counterpart of a worker process
(:mod:`accord.simulation.worker`): it builds the sites' data once, in its
constructor, and keeps it for the whole run. The global model reaches it as one
packed ``uint8`` array in Ray's object store (mapped read-only, no copy); each call
trains a batch of its sites and returns their updates packed row by row in one
array, with a JSON header that says what each row holds. Only ``str`` and numpy
arrays cross between the coordinator and an actor: Ray's own serialisation of
numpy arrays (pickle protocol 5 with out-of-band buffers) carries them. That is
acceptable here because both ends are processes of one simulation, started by the
same user from the same code; it is never used across a trust boundary (a deployed
site speaks gRPC with checked protobuf messages, :mod:`accord.transport`).

The class is plain Python (no Ray import): :mod:`accord.simulation.ray_pool` turns it
into an actor with ``ray.remote``, and tests can call it directly.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from accord.config import FedConfig
from accord.params import Params, ParamSpec
from accord.simulation.compression import SiteCompressors
from accord.simulation.context import build_context
from accord.simulation.jobs import JobError, run_eval, train, write_update
from accord.task.protocol import TrainConfig

__all__ = ["SiteHost", "pack_rows"]


def pack_rows(rows: int, nbytes: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A buffer for ``rows`` packed models of ``nbytes`` each (at least one byte)."""
    return np.zeros((rows, max(nbytes, 1)), dtype=np.uint8)


class SiteHost:
    """One actor's sites, loaded once; runs their training and evaluation jobs.

    ``threads``: BLAS and torch threads (one, as in a worker process, so that an
    update is bit-identical whatever executor computed it).
    """

    def __init__(
        self, config_json: str, base_dir: str, spec_json: str, threads: int = 1
    ) -> None:
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[key] = str(threads)
        config = FedConfig.model_validate(
            {**json.loads(config_json), "base_dir": base_dir}
        )
        self._limits = threadpool_limits(limits=threads)  # kept for the actor's life
        self._ctx = build_context(config, poison=True)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        self._sites = {s.name: s for s in self._ctx.data.sites}
        self._spec = ParamSpec.from_json(spec_json)
        self._compressors = SiteCompressors(config.compression, config.federation.seed)

    def ready(self) -> str:
        """Answered once the constructor has loaded the data (start-up barrier)."""
        return "ready"

    def _model(self, packed: np.ndarray[Any, Any]) -> Params:
        return self._spec.view(packed.data)

    def train(
        self, round_number: int, jobs_json: str, packed_global: np.ndarray[Any, Any]
    ) -> tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Train each job's site from the packed global model.

        Returns (header JSON, updates, compressed payloads): the header has one
        entry per job, in order; a successful one names its ``row`` of
        ``updates`` (or its ``offset`` and ``length`` in the payloads when
        ``[compression]`` is on) with the update's example count, metrics,
        duration, digest and norm; a failed one its status and reason.
        """
        glob = self._model(packed_global)
        jobs: list[dict[str, Any]] = json.loads(jobs_json)
        nbytes = self._spec.packed_nbytes
        updates = pack_rows(len(jobs), nbytes)
        payloads: list[bytes] = []
        offset = 0
        header: list[dict[str, Any]] = []
        row = 0
        for job in jobs:
            name = str(job["participant"])
            config = TrainConfig(**job["config"])
            trained = train(self._ctx.task, self._sites[name].train, glob, config)
            if isinstance(trained, JobError):
                header.append(_failed(name, trained))
                continue
            out_view = self._spec.view(updates[row].data, writable=True)
            out = write_update(trained, glob, out_view, check=True)
            del trained
            if isinstance(out, JobError):
                header.append(_failed(name, out))
                continue
            entry: dict[str, Any] = {
                "participant": name,
                "ok": True,
                "num_examples": out.num_examples,
                "metrics": out.metrics,
                "duration": out.duration_s,
            }
            if self._compressors.enabled:
                blob = self._compressors.compress(name, round_number, out_view)
                payloads.append(blob)
                entry |= {"offset": offset, "length": len(blob)}
                offset += len(blob)
            else:
                entry |= {"row": row, "digest": out.digest, "norm": out.norm}
                row += 1
            header.append(entry)
        packed = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        return json.dumps(header), updates[: max(row, 1)], packed

    def evaluate(
        self,
        round_number: int,
        participants: Sequence[str],
        packed_global: np.ndarray[Any, Any],
    ) -> str:
        """Score the global model on each site's holdout; a JSON list, in order."""
        glob = self._model(packed_global)
        out: list[dict[str, Any]] = []
        for name in participants:
            personal = self._ctx.personal(name, round_number)
            ev = run_eval(
                self._ctx.task, self._sites[name].holdout, glob, personal=personal
            )
            if isinstance(ev, JobError):
                out.append(_failed(name, ev))
            else:
                out.append(
                    {
                        "participant": name,
                        "ok": True,
                        "metrics": ev.metrics,
                        "num_examples": ev.num_examples,
                        "duration": ev.duration_s,
                    }
                )
        return json.dumps(out)


def _failed(name: str, error: JobError) -> dict[str, Any]:
    return {
        "participant": name,
        "ok": False,
        "status": error.status,
        "reason": error.reason,
        "duration": error.duration_s,
    }
