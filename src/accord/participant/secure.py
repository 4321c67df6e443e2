"""A deployed site's side of secure rounds: whom to trust, then mask and answer.

The round loop's :class:`~accord.secagg.session.SecureJob` arrives with a train task,
with the identity certificates of the round's roster. Before it trains, the site
checks every certificate against its own copy of the federation's CA certificate
(:func:`~accord.transport.identity.roster_keys`) and builds the roster's keys from
them; the coordinator's word is never taken for a key. Any member without a valid
certificate, a certificate of another CA, or a certificate for this site that does
not hold this site's key makes the site refuse the task (:meth:`SecureSite.prepare`
returns the reason). After training, :meth:`SecureSite.open` encodes the update
into a :class:`~accord.secagg.session.SecureSession` (the float update is not kept)
and returns the advertisement; :meth:`SecureSite.step` answers each later stage.
One session is open at a time: a new train task or the unmask stage ends it.

A task with distributed DP noise whose noise share is below what its declared
mechanism needs is refused (:meth:`~accord.secagg.session.SecureJob.from_json`
says why), and so is one that names a noise seed, which would let whoever knows
it remove the noise, unless the site was started with ``accept_noise_seed`` (tests
that compare a deployment with a simulation).

Needs the ``secagg`` extra; the runtime imports this module only when a secure
task arrives, so a site without it still serves plain rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.errors import AuthenticationFailed, PkiError, SecAggAborted
from accord.params import Params
from accord.secagg.messages import Stage
from accord.secagg.session import SecureJob, SecureSession
from accord.transport.identity import SigningIdentity, roster_keys
from accord.transport.messages import TaskOrder
from accord.transport.secagg_wire import decode_from_coordinator, encode

__all__ = ["SecurePlan", "SecureSite"]

logger = logging.getLogger(__name__)

_NO_IDENTITY = (
    "this site has no identity key and certificate (identity-key.pem, "
    "identity-cert.pem), so it cannot take part in secure rounds; ask "
    "the federation's operator to enrol it again"
)


@dataclass(frozen=True, slots=True)
class SecurePlan:
    """A secure train task the site accepted: the round's settings and trusted keys."""

    job: SecureJob
    keys: Mapping[str, bytes]


class SecureSite:
    """A site's secure rounds: its identity, the CA it trusts, the open session."""

    def __init__(
        self,
        signing: SigningIdentity | None,
        ca_pem: bytes | None,
        *,
        accept_noise_seed: bool = False,
    ) -> None:
        self._signing = signing
        self._ca_pem = ca_pem
        self._accept_noise_seed = accept_noise_seed
        self._session: tuple[str, int, SecureSession] | None = None

    def drop(self) -> None:
        """Forget the open session (its secrets go with it)."""
        self._session = None

    def prepare(self, order: TaskOrder) -> SecurePlan | str:
        """The plan of a secure train task, or why the site refuses it."""
        self.drop()
        if self._signing is None or self._ca_pem is None:
            return _NO_IDENTITY
        participant = order.config.participant if order.config else ""
        return self._plan(order, order.secure_json, participant)

    def prepare_sum(self, order: TaskOrder, secure_json: str) -> SecurePlan | str:
        """The plan of a secure sum that is not a training round, or why not.

        The preprocessing fit's ``statistics`` task (round 0) carries its
        :class:`SecureJob` in its payload and the roster's certificates.
        """
        self.drop()
        if self._signing is None or self._ca_pem is None:
            return _NO_IDENTITY
        return self._plan(order, secure_json, self._signing.name)

    def _plan(
        self, order: TaskOrder, secure_json: str, participant: str
    ) -> SecurePlan | str:
        signing, ca_pem = self._signing, self._ca_pem
        assert signing is not None and ca_pem is not None
        try:
            job = SecureJob.from_json(secure_json)
        except ValueError as exc:
            return str(exc)
        if job.noise_seed is not None and not self._accept_noise_seed:
            return (
                "the task fixes the seed of this site's DP noise, so whoever knows "
                "it can remove the noise; this site refuses it (a seed is for tests)"
            )
        if job.round_number != order.round or participant != signing.name:
            return (
                f"the secure settings are for round {job.round_number} and site "
                f"{participant!r}; this is round {order.round} at {signing.name!r}"
            )
        try:
            keys = roster_keys(
                order.certificates, roster=job.roster, ca_pem=ca_pem, own=signing
            )
            job.config(keys)  # refuses a threshold or roster the protocol forbids
        except (AuthenticationFailed, PkiError, SecAggAborted, ValueError) as exc:
            return str(exc)
        return SecurePlan(job, keys)

    def open(
        self,
        order: TaskOrder,
        plan: SecurePlan,
        update: Params,
        num_examples: int,
        *,
        seed: int,
    ) -> bytes:
        """Encode ``update`` into the round's session; its advertisement (stage 0).

        Raises SecAggAborted (or ValueError) if the update does not fit the round.
        """
        assert self._signing is not None  # prepare() refused the task otherwise
        session = SecureSession(
            plan.job,
            self._signing.name,
            self._signing.key,
            plan.keys,
            update,
            num_examples,
            seed=seed,
        )
        if session.clipped:
            logger.info("round %d: %d values clipped", order.round, session.clipped)
        advert = encode(session.advertise())
        self._session = (order.run_id, order.round, session)
        return advert

    def open_words(
        self, order: TaskOrder, plan: SecurePlan, words: npt.NDArray[np.uint32]
    ) -> bytes:
        """Open a session whose input is ring ``words``; its advertisement.

        Raises SecAggAborted if the words do not fit the sum.
        """
        assert self._signing is not None  # prepare_sum() refused otherwise
        session = SecureSession.of_words(
            plan.job, self._signing.name, self._signing.key, plan.keys, words
        )
        advert = encode(session.advertise())
        self._session = (order.run_id, order.round, session)
        return advert

    def step(self, order: TaskOrder) -> bytes:
        """Answer a ``secagg`` task's stage.

        Raises SecAggAborted when the session cannot go on, SubmissionRefused when
        the coordinator's message is malformed; either ends the session.
        """
        held = self._session
        if held is None or held[:2] != (order.run_id, order.round):
            raise SecAggAborted(
                f"no secure session open for round {order.round}", stage=order.stage
            )
        try:
            stage = Stage(order.stage)
        except ValueError:
            self.drop()
            raise SecAggAborted(f"unknown stage {order.stage[:64]!r}") from None
        try:
            reply = encode(held[2].step(decode_from_coordinator(order.payload, stage)))
        except BaseException:
            self.drop()
            raise
        if stage is Stage.UNMASK:
            self.drop()
        return reply
