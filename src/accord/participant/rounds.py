"""A site's secure rounds of either protocol: admit the task, seal the update, answer.

A secure train task's settings name their protocol: a CKKS round's JSON says
``"mode": "ckks"``, a masking round's says nothing (it predates CKKS). The runtime
hands every secure task to :class:`SecureRounds`, which applies the site's policy
(:mod:`~accord.participant.policy`), has the protocol's own checks made
(:class:`~accord.participant.secure.SecureSite` for masking,
:class:`~accord.participant.ckks.CkksSite` for CKKS), and holds the admitted
round's settings until the update is trained: :meth:`SecureRounds.seal` turns it
into the first message that leaves the site (a masking advertisement, or the
encrypted update), :meth:`SecureRounds.answer` answers each later stage. A
secure sum that is not a training round (the preprocessing fit's statistics) is
admitted by :meth:`SecureRounds.admit_sum` and opened by
:meth:`SecureRounds.seal_sum`, under the same policy, by masking.

Both protocols' modules need their extras; they are imported when the first task
of their protocol arrives, and a site without them refuses such tasks with the
reason, as does a site without the key material a protocol needs (an identity
certificate for masking, the key holder's secret context for CKKS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from accord.errors import AccordError, SecAggAborted
from accord.jsontext import parse_json
from accord.params import Params
from accord.participant.policy import SitePolicy
from accord.transport.messages import TaskOrder

if TYPE_CHECKING:
    from accord.participant.ckks import CkksSite
    from accord.participant.secure import SecurePlan, SecureSite
    from accord.secagg.ckks_session import CkksJob
    from accord.transport.identity import SigningIdentity

__all__ = ["SecureRounds"]

#: Stage names of :mod:`accord.secagg` (repeated: this module imports neither).
_ADVERTISE, _CKKS_UPLOAD, _CKKS_DECRYPT = "advertise", "ckks_upload", "ckks_decrypt"

_NO_CONTEXT = (
    "this site holds no CKKS context, so it cannot take part in CKKS rounds; ask "
    "the federation's key holder for ckks-secret.bin and pass it with "
    "`accord participant --ckks-context`"
)


def _is_ckks(secure_json: str) -> bool:
    """Whether a secure task's settings are a CKKS round's."""
    try:
        raw = parse_json(secure_json)
    except ValueError:
        return False  # the masking checks say what is wrong with it
    return isinstance(raw, dict) and raw.get("mode") == "ckks"


class SecureRounds:
    """The site's secure rounds: its keys, its policy, the admitted round."""

    def __init__(
        self,
        policy: SitePolicy,
        *,
        signing: SigningIdentity | None = None,
        ca_pem: bytes | None = None,
        ckks_context: bytes | None = None,
        accept_noise_seed: bool = False,
    ) -> None:
        self._policy = policy
        self._accept_noise_seed = accept_noise_seed
        self._signing = signing
        self._ca_pem = ca_pem
        self._ckks_context = ckks_context
        self._masking: SecureSite | None = None  # made by the first masking task
        self._ckks: CkksSite | None = None  # made by the first CKKS task
        self._plan: SecurePlan | None = None
        self._ckks_job: CkksJob | None = None

    def drop(self) -> None:
        """A new round, or an aborted one: the last round's secrets go."""
        if self._masking is not None:
            self._masking.drop()
        if self._ckks is not None:
            self._ckks.drop()
        self._plan = self._ckks_job = None

    def admit(self, order: TaskOrder) -> str | None:
        """Check a secure train task; None if the site takes it, else why not."""
        self.drop()
        if _is_ckks(order.secure_json):
            return self._admit_ckks(order)
        return self._admit_masking(order)

    def _admit_masking(self, order: TaskOrder) -> str | None:
        if self._masking is None:
            try:
                from accord.participant.secure import SecureSite
            except ImportError as exc:
                return f"this site cannot run secure aggregation: {exc}"
            self._masking = SecureSite(
                self._signing, self._ca_pem, accept_noise_seed=self._accept_noise_seed
            )
        plan = self._masking.prepare(order)
        if isinstance(plan, str):
            return plan
        refusal = self._policy.refusal(secure=True, threshold=plan.job.threshold)
        if refusal is None:
            self._plan = plan
        return refusal

    def admit_sum(self, order: TaskOrder, secure_json: str) -> str | None:
        """Check a secure sum that is not a training round (the ``statistics`` task).

        None if the site takes part, else why not: the masking protocol's checks
        (identity, roster certificates) and the site's minimum threshold.
        """
        self.drop()
        if self._masking is None:
            try:
                from accord.participant.secure import SecureSite
            except ImportError as exc:
                return f"this site cannot run secure aggregation: {exc}"
            self._masking = SecureSite(
                self._signing, self._ca_pem, accept_noise_seed=self._accept_noise_seed
            )
        plan = self._masking.prepare_sum(order, secure_json)
        if isinstance(plan, str):
            return plan
        refusal = self._policy.refusal(secure=True, threshold=plan.job.threshold)
        if refusal is None:
            self._plan = plan
        return refusal

    def seal_sum(self, order: TaskOrder, words: npt.NDArray[np.uint32]) -> bytes:
        """The advertisement of the admitted sum, whose input is ring ``words``.

        Raises SecAggAborted if none was admitted or the words do not fit it.
        """
        plan, self._plan = self._plan, None
        if plan is None or self._masking is None:
            raise SecAggAborted(f"no secure sum of round {order.round} admitted")
        return self._masking.open_words(order, plan, words)

    def _admit_ckks(self, order: TaskOrder) -> str | None:
        refusal = self._policy.refusal(secure=True, ckks=True)
        if refusal is not None:
            return refusal
        if self._ckks_context is None:
            return _NO_CONTEXT
        if self._ckks is None:
            try:
                from accord.participant.ckks import CkksSite

                self._ckks = CkksSite(self._ckks_context)
            except (ImportError, AccordError) as exc:
                return f"this site cannot run CKKS rounds: {exc}"
        job = self._ckks.prepare(order)
        if isinstance(job, str):
            return job
        self._ckks_job = job
        return None

    def seal(
        self, order: TaskOrder, update: Params, num_examples: int, *, seed: int
    ) -> tuple[str, bytes]:
        """The first stage's name and message for the trained ``update``.

        Raises SecAggAborted (or ValueError) if the update does not fit the round.
        """
        plan, job = self._plan, self._ckks_job
        self._plan = self._ckks_job = None
        if job is not None and self._ckks is not None:
            return _CKKS_UPLOAD, self._ckks.upload(order, job, update, num_examples)
        if plan is not None and self._masking is not None:
            advert = self._masking.open(order, plan, update, num_examples, seed=seed)
            return _ADVERTISE, advert
        raise SecAggAborted(f"no secure train task of round {order.round} admitted")

    def answer(self, order: TaskOrder) -> bytes:
        """The reply to a ``secagg`` task's stage.

        Raises SecAggAborted when the round cannot go on here, SubmissionRefused
        when the coordinator's message is malformed.
        """
        if order.stage == _CKKS_DECRYPT:
            if self._ckks is None:
                raise SecAggAborted(
                    f"no CKKS round open for round {order.round}", stage=order.stage
                )
            return self._ckks.decrypt(order)
        if self._masking is None:
            raise SecAggAborted(
                f"no secure session open for round {order.round}", stage=order.stage
            )
        return self._masking.step(order)
