"""The consistency check (stages 3 and 4), seen from a participant.

Bonawitz et al.'s defence against a coordinator that *equivocates*: one that tells
some survivors that participant ``u`` dropped out (and so collects shares of ``u``'s
masking key) while telling others that ``u`` survived (and so collects shares of
``u``'s self-mask seed). With both, ``u``'s masked input unmasks on its own.

Each survivor signs the survivor set it was shown; before revealing any share, a
participant checks that the coordinator relays at least ``threshold`` signatures,
all over the very set it signed itself, and reveals nothing otherwise. What makes
equivocation fail is the threshold: honest holders answer for one view only, so
with ``threshold`` above half of a participant's holders, no two disjoint groups of
them can each supply ``threshold`` shares (``docs/security.md`` gives the bound with
colluders). The check adds that no share leaves a participant on a view that fewer
than ``threshold`` identified participants vouch for, and that a relayed signature
over any other set, or a forged one, is caught and reported as equivocation: the
coordinator lied either way.
"""

from __future__ import annotations

from collections.abc import Mapping

from accord.errors import EquivocationDetected
from accord.secagg import transcript as tx
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import SignatureCheck, verify
from accord.secagg.messages import Stage, SurvivorSignatures

__all__ = ["check_signatures", "check_survivor_list"]


def check_survivor_list(
    cfg: SecAggConfig,
    listed: tuple[str, ...],
    *,
    me: str,
    neighbours: frozenset[str],
    received: Mapping[str, object],
) -> None:
    """Raise ValueError unless ``listed`` is a set this participant may sign.

    ``received`` maps each dealer whose shares reached this participant.
    """
    order = cfg.order()
    positions = [order.get(p, -1) for p in listed]
    if min(positions, default=0) < 0 or positions != sorted(set(positions)):
        raise ValueError("the survivor list is not a sorted subset of the roster")
    if me not in listed:
        raise ValueError("the coordinator counts this participant as dropped")
    if len(listed) < cfg.threshold:
        raise ValueError(
            f"only {len(listed)} survivors, fewer than the threshold {cfg.threshold}"
        )
    unknown = [p for p in listed if p in neighbours and p not in received]
    if unknown:
        raise ValueError(
            f"the coordinator lists {unknown} as survivors, but their shares never "
            "reached this participant"
        )


def check_signatures(
    cfg: SecAggConfig,
    signed: SurvivorSignatures,
    *,
    survivors: tuple[str, ...],
    directory: bytes,
    check: SignatureCheck = verify,
) -> None:
    """Check the relayed signatures all cover ``survivors`` (the set signed here).

    ``directory`` is the digest of this sum's key directory, which each signature
    covers too (:func:`~accord.secagg.transcript.directory_digest`). Raises
    :class:`EquivocationDetected` if the set or any signature differs, and
    ValueError if fewer than ``threshold`` participants confirmed it.
    """
    stage = str(Stage.UNMASK)
    if signed.survivors != survivors:
        raise EquivocationDetected(
            "the coordinator showed this participant one survivor set at the "
            "consistency check and another now",
            stage=stage,
        )
    keys = cfg.identity_keys()
    statement = tx.survivor_statement(cfg, survivors, directory)
    valid: set[str] = set()
    forged: list[str] = []
    for item in signed.signatures:
        who = item.sender
        if who not in survivors or who in valid or who in forged:
            raise ValueError(f"the signature list names {who!r} wrongly or twice")
        ours = (item.run_id, item.round_number) == (cfg.run_id, cfg.round_number)
        if ours and check(keys[who], item.signature, statement):
            valid.add(who)
        else:
            forged.append(who)
    if forged:
        raise EquivocationDetected(
            f"the signatures of {forged} do not cover the survivor set this "
            "participant was shown: the coordinator showed them a different set "
            "(or forged them). No share is revealed",
            stage=stage,
            signers=tuple(forged),
        )
    if len(valid) < cfg.threshold:
        raise ValueError(
            f"only {len(valid)} participants confirmed the survivor set, fewer than "
            f"the threshold {cfg.threshold}"
        )
