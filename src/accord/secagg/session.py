"""A participant's side of a secure round, from a trained update to the last stage.

The round loop sends each selected participant a :class:`SecureJob` with its
training job: the round's public settings (run, round, roster, vector size,
threshold, degree, clip range, weight cap). After training, the participant opens
a :class:`SecureSession`: the update is encoded into the ring at once (the float
update is dropped), and the session answers each stage's coordinator message (the
dataclasses of :mod:`accord.secagg.messages`; callers convert them to and from
bytes with :mod:`accord.transport.secagg_wire`), until the unmask stage. The
same class serves a simulation's worker process and a deployed site; only where
the peers' identity keys come from differs (the simulation's key registry, or the
CA-signed identity certificates a deployed site checks itself).

**Weights.** The coordinator learns ``sum w_i x_i`` and ``sum w_i``, never one
``w_i``: each site's weight is its example count divided by the declared cap
``max_examples`` (a count above it counts as the cap), which keeps every weight in
``[0, 1]`` for :class:`~accord.secagg.encoding.FixedPointEncoding`.

**Distributed noise.** A job with ``noise`` (participant-level DP under masking,
:class:`~accord.secagg.noised.DistributedNoise`) is encoded differently: the site
clips its whole update to the declared L2 ``clip``, weighs it 1 like every site,
and adds its noise share in the ring. A job whose share is below what its declared
noise multiplier needs is not a valid job (:meth:`SecureJob.from_json` refuses it
with the reason). ``noise_seed`` makes that noise reproducible (tests only: the
coordinator could remove it); a deployed site refuses it unless its operator
allowed it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.errors import ConfigError, SecAggAborted
from accord.jsontext import parse_json
from accord.params import Params, ParamSpec
from accord.privacy.noise import NoiseSource
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import Ed25519PrivateKey, SignatureCheck
from accord.secagg.encoding import FixedPointEncoding
from accord.secagg.mask import MaskGenerator
from accord.secagg.messages import (
    AdvertiseKeys,
    FromCoordinator,
    KeyDirectory,
    SharesDelivery,
    Stage,
    SurvivorList,
    ToCoordinator,
)
from accord.secagg.noised import DistributedNoise
from accord.secagg.packed import PackedEncoding
from accord.secagg.participant import SecAggParticipant

__all__ = ["SecureJob", "SecureSession", "check_secure_spec"]

logger = logging.getLogger(__name__)

_FLOAT_KINDS = "f"


def check_secure_spec(spec: ParamSpec) -> None:
    """Raise :class:`ConfigError` unless every tensor of the model is floating point.

    Masking works on fixed-point encodings of floats; an integer tensor (a step
    counter, a vocabulary index) has no meaningful mean to protect.
    """
    bad = [t.name for t in spec.tensors if np.dtype(t.dtype).kind not in _FLOAT_KINDS]
    if bad:
        raise ConfigError(
            f"secure aggregation needs floating-point parameters; {', '.join(bad)} "
            "are not: keep them out of the model the federation averages",
            key="secure_aggregation.mode",
        )


@dataclass(frozen=True, slots=True)
class SecureJob:
    """The public settings of one secure round, as sent with each training job.

    ``roster`` lists the round's participants (the selected ones) in protocol
    order. ``identity_keys`` maps them to raw Ed25519 public keys where the sender
    is trusted to say so (a simulation); a deployed site ignores it and takes the
    keys from certificates it verifies itself.
    """

    run_id: str
    round_number: int
    roster: tuple[str, ...]
    vector_size: int
    threshold: int
    degree: int
    clip: float
    max_examples: int
    identity_keys: tuple[tuple[str, str], ...] = ()
    noise: DistributedNoise | None = None
    noise_seed: int | None = None
    #: Bits per value in the ring: 32 (fixed point), or 8 / 4 (``q8``/``q4``
    #: quantization packed several to a word, :mod:`accord.secagg.packed`).
    bits: int = 32

    def __post_init__(self) -> None:
        if list(self.roster) != sorted(set(self.roster)) or not self.roster:
            raise ValueError("the roster must be non-empty, sorted and without repeats")
        if self.max_examples < 1:
            raise ValueError("max_examples must be at least 1")
        if self.noise is not None:
            self._check_noise(self.noise)
        elif self.noise_seed is not None:
            raise ValueError("a noise seed without distributed noise")
        if self.bits != 32 and self.noise is not None:
            raise ValueError(
                "quantized secure rounds do not carry distributed noise: the noise "
                "share needs the 32-bit fixed-point encoding"
            )
        # Both checks raise ValueError or ConfigError with a readable reason.
        self.encoding  # noqa: B018 - built for its checks (the headroom above all)

    def _check_noise(self, noise: DistributedNoise) -> None:
        if noise.participants != len(self.roster) or noise.threshold != self.threshold:
            raise ValueError(
                f"the distributed noise is planned for {noise.participants} sites and "
                f"threshold {noise.threshold}, the round has {len(self.roster)} and "
                f"{self.threshold}"
            )
        if DistributedNoise.words(noise.values) != self.vector_size:
            raise ValueError("the distributed noise is planned for another model size")
        refusal = noise.refusal()
        if refusal is not None:
            raise ValueError(refusal)

    @property
    def encoding(self) -> FixedPointEncoding | PackedEncoding:
        """How floats become ring words in this round (by :attr:`bits`)."""
        if self.bits == 32:
            return FixedPointEncoding(self.clip, len(self.roster), max_weight=1.0)
        return PackedEncoding(self.bits, self.clip, len(self.roster), max_weight=1.0)

    def words(self, values: int) -> int:
        """Ring words of an update of ``values`` floats in this round."""
        return self.encoding.words(values)

    def decode(
        self, total: npt.NDArray[np.uint32], contributors: int, values: int
    ) -> tuple[npt.NDArray[np.float64], float]:
        """The unmasked ring total as (``sum w_i x_i``, ``sum w_i``)."""
        encoding = self.encoding
        if isinstance(encoding, PackedEncoding):
            return encoding.decode(total, contributors, values)
        return encoding.decode(total)

    def implausible(
        self, weighted: npt.NDArray[np.float64], weight: float, contributors: int
    ) -> str | None:
        """Why a decoded total no ``contributors`` honest sites can produce is one.

        Every honest site encodes a weight in ``[0, 1]`` and values clipped to
        ``[-clip, clip]`` times that weight, so the total weight lies in
        ``[0, contributors]`` and each coordinate of the weighted sum within
        ``clip`` times the total weight, up to the encoding's rounding. A site
        running modified code can write any ring words, and masking hides which
        site did: a total outside those bounds is refused whole rather than
        released (a negative weight word could otherwise inflate the mean, words
        past the clip range shift it by up to ``contributors * clip``).
        """
        encoding = self.encoding
        slack = encoding.weight_bound
        if not -slack <= weight <= contributors + slack:
            return (
                f"the unmasked total weight {weight:.6g} is outside [0, "
                f"{contributors}], the range {contributors} contributors' weights "
                "can sum to: a participant sent a weight no honest site encodes; "
                "nothing is released"
            )
        bound = self.clip * max(weight, 0.0) + self.clip * slack
        bound += contributors / encoding.scale
        largest = float(np.max(np.abs(weighted))) if weighted.size else 0.0
        if not largest <= bound:
            return (
                f"a coordinate of the unmasked weighted sum is {largest:.6g}, above "
                f"clip x total weight ({bound:.6g}): a participant sent values "
                "beyond the clip range; nothing is released"
            )
        return None

    def weight(self, num_examples: int) -> float:
        """A site's weight in ``[0, 1]``: its examples over the declared cap."""
        return min(max(num_examples, 0), self.max_examples) / self.max_examples

    def config(self, keys: Mapping[str, bytes]) -> SecAggConfig:
        """The protocol's config, with the identity keys the caller trusts."""
        missing = [p for p in self.roster if p not in keys]
        if missing:
            raise SecAggAborted(
                f"no trusted identity key for {', '.join(missing)}", stage="advertise"
            )
        return SecAggConfig(
            run_id=self.run_id,
            round_number=self.round_number,
            identities=tuple((p, bytes(keys[p])) for p in self.roster),
            vector_size=self.vector_size,
            threshold=self.threshold,
            degree=self.degree,
        )

    def declared_keys(self) -> dict[str, bytes]:
        """``identity_keys`` as raw bytes."""
        return {p: bytes.fromhex(k) for p, k in self.identity_keys}

    def to_json(self) -> str:
        """The job as JSON (what travels)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SecureJob:
        """Parse and validate a job; ValueError with the reason if it is not one."""
        try:
            raw: dict[str, Any] = parse_json(text)
            return cls(
                run_id=str(raw["run_id"]),
                round_number=int(raw["round_number"]),
                roster=tuple(str(p) for p in raw["roster"]),
                vector_size=int(raw["vector_size"]),
                threshold=int(raw["threshold"]),
                degree=int(raw["degree"]),
                clip=float(raw["clip"]),
                max_examples=int(raw["max_examples"]),
                identity_keys=tuple(
                    (str(p), str(k)) for p, k in raw.get("identity_keys", ())
                ),
                noise=_noise_of(raw.get("noise")),
                noise_seed=None
                if raw.get("noise_seed") is None
                else int(raw["noise_seed"]),
                bits=int(raw.get("bits", 32)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a valid secure-aggregation job: {exc}") from None


def _noise_of(raw: Any) -> DistributedNoise | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TypeError("noise must be an object")
    return DistributedNoise(
        clip=float(raw["clip"]),
        noise_multiplier=float(raw["noise_multiplier"]),
        participants=int(raw["participants"]),
        threshold=int(raw["threshold"]),
        values=int(raw["values"]),
        scale=float(raw["scale"]),
        noise_share=float(raw["noise_share"]),
    )


class SecureSession:
    """One participant's secure round, after training.

    ``seed`` drives the stochastic rounding of the encoding (so a seeded run gives
    the same model: masks cancel exactly in the ring); the round's secrets come
    from ``entropy`` (the OS CSPRNG unless a test replaces it).
    """

    def __init__(
        self,
        job: SecureJob,
        participant: str,
        identity: Ed25519PrivateKey,
        keys: Mapping[str, bytes],
        update: Params,
        num_examples: int,
        *,
        seed: int,
        masks: MaskGenerator | None = None,
        verifier: SignatureCheck | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        config = job.config(keys)
        if config.vector_size != job.words(update.size):
            raise SecAggAborted(
                f"the round expects {config.vector_size} ring words, the update of "
                f"{update.size} values makes {job.words(update.size)}",
                stage="advertise",
            )
        rng = np.random.default_rng(seed)
        self._vector: np.ndarray[Any, np.dtype[np.uint32]] | None
        if job.noise is not None:
            flat = update.flatten(np.float64)
            source = NoiseSource(job.noise_seed)
            index = job.roster.index(participant)
            self._vector, was_clipped = job.noise.encode(
                flat, rng, source.generator(job.round_number, index)
            )
            del flat
            self.clipped = int(was_clipped)
            if was_clipped:
                logger.info("the update was clipped to L2 norm %g", job.noise.clip)
        else:
            encoded = job.encoding.encode_parts(
                list(update.values()), job.weight(num_examples), rng
            )
            self.clipped = clipped = encoded.clipped
            if clipped:
                logger.info(
                    "%d of %d update values exceed the declared range ±%g and were "
                    "clipped",
                    clipped,
                    update.size,
                    job.clip,
                )
            self._vector = encoded.words
        self._state = SecAggParticipant(
            config,
            participant,
            identity,
            masks=masks,
            verifier=verifier,
            entropy=entropy,
        )

    @classmethod
    def of_words(
        cls,
        job: SecureJob,
        participant: str,
        identity: Ed25519PrivateKey,
        keys: Mapping[str, bytes],
        words: np.ndarray[Any, np.dtype[np.uint32]],
        *,
        masks: MaskGenerator | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> SecureSession:
        """A session whose input is ring ``words`` encoded already.

        For sums that are not a model update: the preprocessing fit's statistics,
        encoded exactly (:class:`~accord.secagg.exact.ExactEncoding`) rather than
        clipped and weighted. Raises SecAggAborted when their number is not the
        round's vector size.
        """
        config = job.config(keys)
        if words.dtype != np.uint32 or words.shape != (config.vector_size,):
            raise SecAggAborted(
                f"the round sums {config.vector_size} ring words, the input has "
                f"{words.size}",
                stage="advertise",
            )
        session = cls.__new__(cls)
        session.clipped = 0
        session._vector = words.copy()
        session._state = SecAggParticipant(
            config, participant, identity, masks=masks, entropy=entropy
        )
        return session

    @property
    def stage(self) -> Stage:
        """The stage whose coordinator message the session expects next."""
        return self._state.stage

    def advertise(self) -> AdvertiseKeys:
        """Stage 0's message."""
        return self._state.advertise()

    def step(self, message: FromCoordinator) -> ToCoordinator:
        """Answer the coordinator's message of the current stage; SecAggAborted to stop.

        The caller parsed ``message`` for the stage it names
        (:func:`accord.transport.secagg_wire.decode_from_coordinator` refuses a blob
        of another stage).
        """
        state = self._state
        if isinstance(message, KeyDirectory):
            return state.share_keys(message)
        if isinstance(message, SharesDelivery):
            vector, self._vector = self._vector, None
            if vector is None:
                raise SecAggAborted(
                    "the masked input was sent already", stage=state.stage
                )
            return state.masked_input(message, vector)
        if isinstance(message, SurvivorList):
            return state.consistency_check(message)
        return state.unmask(message)
