"""A deployed site's side of CKKS rounds: encrypt its update, decrypt the round's sum.

The key holder gave every site the same secret context (``ckks-secret.bin``,
``accord participant --ckks-context``), out of band; the coordinator holds only the
public one. A CKKS round's train task carries the round's
:class:`~accord.secagg.ckks_session.CkksJob`; after training, the site clips,
weights and encrypts its update (:func:`~accord.secagg.ckks_session.ckks_upload`)
and only the ciphertext leaves it. The coordinator then asks one contributor to
decrypt the encrypted sum (:meth:`CkksSite.decrypt`).

Decryption is the one capability a coordinator lacks, so the site grants it
sparingly: it decrypts only for the run and round of its own last upload, once
(the round's state is dropped first), and never for a round it did not encrypt
for. That does not stop an active coordinator from passing off one upload as the
sum (``docs/security.md``), but it keeps the site from being an oracle that
decrypts whatever it is sent, as often as it is asked. What it releases is never
the exact decryption: noise that swamps CKKS's decryption error is added and the
values rounded first (:mod:`accord.secagg.ckks_release`, IND-CPA-D). Against an
active coordinator neither is enough: CKKS protects only against an
honest-but-curious one.

Needs the ``ckks`` extra (and the ``secagg`` one, which :mod:`accord.secagg`
imports); the runtime imports this module only when a CKKS task arrives.
"""

from __future__ import annotations

from accord.errors import SecAggAborted
from accord.params import Params
from accord.secagg.ckks_keys import load_context
from accord.secagg.ckks_session import (
    DECRYPT_STAGE,
    CkksJob,
    ckks_decrypt,
    ckks_upload,
)
from accord.transport.messages import TaskOrder

__all__ = ["CkksSite"]


class CkksSite:
    """A site's CKKS rounds: the key holder's secret context, the open round."""

    def __init__(self, secret_context: bytes) -> None:
        load_context(secret_context, secret=True)  # ConfigError if not a secret one
        self._secret = secret_context
        self._open: tuple[str, int, CkksJob] | None = None

    def drop(self) -> None:
        """Forget the open round: its sum will not be decrypted here."""
        self._open = None

    def prepare(self, order: TaskOrder) -> CkksJob | str:
        """The settings of a CKKS train task, or why the site refuses it."""
        self.drop()
        try:
            job = CkksJob.from_json(order.secure_json)
        except ValueError as exc:
            return str(exc)
        if job.round_number != order.round:
            return (
                f"the CKKS settings are for round {job.round_number}; this is "
                f"round {order.round}"
            )
        return job

    def upload(
        self, order: TaskOrder, job: CkksJob, update: Params, num_examples: int
    ) -> bytes:
        """The encrypted update; opens the round for its decryption.

        Raises SecAggAborted (or ValueError) if the update does not fit the round.
        """
        blob = ckks_upload(job, self._secret, update, num_examples)
        self._open = (order.run_id, order.round, job)
        return blob

    def decrypt(self, order: TaskOrder) -> bytes:
        """Decrypt the round's encrypted sum: float64 ``sum(w * x)``, ``sum(w)``.

        Flooded with noise and rounded before it is returned (released).

        Raises SecAggAborted if this site did not encrypt for the task's round, or
        if the payload is not a sum under its key.
        """
        held, self._open = self._open, None
        if held is None or held[:2] != (order.run_id, order.round):
            raise SecAggAborted(
                f"this site decrypts only the sum of a round it encrypted for, "
                f"once; it has no open CKKS round {order.round}",
                stage=DECRYPT_STAGE,
            )
        return ckks_decrypt(self._secret, order.payload, held[2].values)
