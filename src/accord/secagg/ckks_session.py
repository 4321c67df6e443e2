"""A participant's side of a CKKS round: what it encrypts, and decrypting the sum.

With ``secure_aggregation.mode = "ckks"`` the federation has a key holder (in a
simulation, the engine plays it; in a deployment, whoever ran ``KeyHolder.create``
and handed the secret context to the sites out of band). Each round the coordinator
sends the training jobs a :class:`CkksJob`; a site clips its update to the declared
range, weights it (examples over ``max_examples``, as with masking) and encrypts it
(:func:`ckks_upload`). The coordinator adds the ciphertexts under the public context
and asks one contributing site to decrypt the sum (:func:`ckks_decrypt`), which
answers ``sum(w * x)`` and ``sum(w)`` as little-endian float64, flooded with noise
and rounded before they leave it (:mod:`accord.secagg.ckks_release`).

CKKS protects only against an honest-but-curious coordinator; see
:mod:`accord.secagg.ckks` for what it does not protect against (any participant can
decrypt any ciphertext; an active coordinator can have a crafted one decrypted).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.errors import SecAggAborted
from accord.jsontext import parse_json
from accord.params import Params
from accord.secagg.ckks import CkksParticipant, decrypt_sum
from accord.secagg.ckks_release import NormalSource, release, system_normal

__all__ = ["CkksJob", "ckks_decrypt", "ckks_upload", "decode_sum"]

UPLOAD_STAGE = "ckks_upload"
DECRYPT_STAGE = "ckks_decrypt"


@dataclass(frozen=True, slots=True)
class CkksJob:
    """The public settings of one CKKS round, as sent with each training job."""

    run_id: str
    round_number: int
    values: int  # the model's number of values (the weight travels as one more)
    clip: float
    max_examples: int
    mode: str = "ckks"

    def __post_init__(self) -> None:
        if self.mode != "ckks":
            raise ValueError(f"a CKKS job has mode 'ckks', not {self.mode!r}")
        if self.values < 1:
            raise ValueError("values must be at least 1")
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be a positive number, not {self.clip}")
        if self.max_examples < 1:
            raise ValueError("max_examples must be at least 1")

    def weight(self, num_examples: int) -> float:
        """A site's weight in ``[0, 1]``: its examples over the declared cap."""
        return min(max(num_examples, 0), self.max_examples) / self.max_examples

    def to_json(self) -> str:
        """The job as JSON (what travels)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> CkksJob:
        """Parse and validate a job; ValueError with the reason if it is not one."""
        try:
            raw: dict[str, Any] = parse_json(text)
            return cls(
                run_id=str(raw["run_id"]),
                round_number=int(raw["round_number"]),
                values=int(raw["values"]),
                clip=float(raw["clip"]),
                max_examples=int(raw["max_examples"]),
                mode=str(raw.get("mode", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a valid CKKS job: {exc}") from None


def ckks_upload(
    job: CkksJob, secret_context: bytes, update: Params, num_examples: int
) -> bytes:
    """The site's encrypted, clipped, weighted update (and weight)."""
    if update.size != job.values:
        raise SecAggAborted(
            f"the round expects {job.values} values, the update has {update.size}",
            stage=UPLOAD_STAGE,
        )
    flat = np.clip(update.flatten(np.float64), -job.clip, job.clip)
    return CkksParticipant(secret_context).encrypt(flat, job.weight(num_examples))


def ckks_decrypt(
    secret_context: bytes,
    blob: bytes,
    values: int,
    *,
    normal: NormalSource = system_normal,
) -> bytes:
    """Decrypt the coordinator's sum for release: ``sum(w * x)``, then ``sum(w)``.

    Little-endian float64, flooded with noise and rounded
    (:func:`~accord.secagg.ckks_release.release`): never the exact decryption, which
    would hand out the key's decryption error. ``normal`` is for tests only.
    """
    weighted, weight = decrypt_sum(secret_context, blob, values)
    exact = np.empty(values + 1, dtype=np.float64)
    exact[:-1] = weighted
    exact[-1] = weight
    return release(exact, normal=normal).astype("<f8").tobytes()


def decode_sum(payload: bytes, values: int) -> tuple[npt.NDArray[np.float64], float]:
    """Parse a decryption reply: ``values + 1`` finite floats, or ValueError."""
    if len(payload) != 8 * (values + 1):
        raise ValueError(
            f"a decrypted sum has {8 * (values + 1)} bytes, this one {len(payload)}"
        )
    decoded = np.frombuffer(payload, dtype="<f8").astype(np.float64)
    if not np.isfinite(decoded).all():
        raise ValueError("the decrypted sum holds NaN or infinity")
    return decoded[:-1], float(decoded[-1])
