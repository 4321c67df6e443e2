"""The coordinator's unmasking: rebuild secrets from revealed shares, with blame.

:func:`remove_masks` takes the running ring total of the survivors' masked inputs
and subtracts what is left of the masks: each survivor's self-mask (its seed rebuilt
from the shares its neighbours revealed) and, for each participant that dealt shares
but sent no input, the pairwise masks its surviving neighbours added for it (its
masking private key rebuilt, then each pair key re-derived). Pairwise masks between
two survivors cancel in the sum and are never touched.

Shamir's reconstruction returns *some* value for any set of shares, so each
result is checked against what the dealer committed to at stage 0 (the seed
commitment for a self-mask seed, the advertised public key for a masking key).

The fast path rebuilds every secret the round needs in one batch (dealers whose
first ``t`` revealed shares have the same indices share one set of Lagrange weights,
:func:`~accord.secagg.shamir.combine_batch`) and checks each once. Only when a check
fails (or a share in the batch is unusable) is each revealed share checked against
the dealer's signed commitment to it (checked when the dealing arrived at stage 1):
a share that does not match its commitment was altered by the holder that revealed
it, which is recorded as an offender and left out before trying again; if shares
that match what the dealer signed still do not rebuild what it committed to at
stage 0, the dealer dealt inconsistent shares and the round aborts naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from accord.errors import SecAggAborted, ShareRejected
from accord.secagg import transcript as tx
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import x25519_public
from accord.secagg.graph import NeighbourGraph
from accord.secagg.mask import MaskGenerator, RingVector, SignedKey
from accord.secagg.messages import (
    AdvertiseKeys,
    RevealedShare,
    ShareKind,
    Stage,
    UnmaskShares,
)
from accord.secagg.shamir import Share, combine_batch, combine_shares

__all__ = ["Recovered", "recover_secret", "remove_masks"]

_Revealed = dict[tuple[str, ShareKind], dict[str, RevealedShare]]


def remove_masks(
    cfg: SecAggConfig,
    *,
    total: RingVector,
    graph: NeighbourGraph,
    adverts: Mapping[str, AdvertiseKeys],
    survivors: tuple[str, ...],
    dealers: Iterable[str],
    commitments: Mapping[str, bytes],
    reveals: Iterable[UnmaskShares],
    masks: MaskGenerator,
) -> tuple[str, ...]:
    """Unmask ``total`` in place; return the holders that revealed forged shares.

    ``dealers`` are all who dealt shares (U2), with ``commitments`` their signed
    lists of share commitments, ``survivors`` those whose inputs are in ``total``
    (U3), ``reveals`` the stage-4 messages, in protocol order.
    """
    revealed: _Revealed = {}
    for message in reveals:
        for share in message.shares:
            revealed.setdefault((share.dealer, share.kind), {})[message.sender] = share
    order = cfg.order()
    offenders: set[str] = set()
    alive = set(survivors)
    gone = sorted(set(dealers) - alive, key=order.__getitem__)
    needed = [(owner, ShareKind.SELF_MASK) for owner in survivors] + [
        (g, ShareKind.MASK_KEY) for g in gone if graph.of(g) & alive
    ]
    candidates = _combine_needed(revealed, needed, cfg.threshold)

    def rebuild(dealer: str, kind: ShareKind) -> bytes:
        advert = adverts[dealer]

        def committed(secret: bytes) -> bool:
            if kind is ShareKind.SELF_MASK:
                expected = tx.seed_commitment(cfg, dealer, secret)
                return expected == advert.seed_commitment
            private = tx.masking_private_key(cfg, dealer, secret)
            return x25519_public(private) == advert.masking_key

        def dealt(holder: str, share: RevealedShare) -> bool:
            try:
                signed = tx.commitment_of(commitments[dealer], share.index, kind)
            except (KeyError, ValueError):
                return False
            made = tx.share_commitment(
                cfg, kind, dealer, holder, share.index, share.value, share.salt
            )
            return made == signed

        found = recover_secret(
            cfg,
            dealer=dealer,
            kind=kind,
            revealed=revealed.get((dealer, kind), {}),
            is_committed=committed,
            is_dealt=dealt,
            candidate=candidates.get((dealer, kind)),
        )
        offenders.update(found.offenders)
        return found.secret

    # Every secret is rebuilt and checked before the total is touched; then all
    # the masks come off in one blocked pass over it.
    remove: list[SignedKey] = []
    for owner in survivors:
        seed = rebuild(owner, ShareKind.SELF_MASK)
        remove.append((tx.self_mask_key(cfg, owner, seed), -1))
    for dropped in gone:
        peers = sorted(graph.of(dropped) & alive, key=order.__getitem__)
        if not peers:
            continue
        secret = rebuild(dropped, ShareKind.MASK_KEY)
        private = tx.masking_private_key(cfg, dropped, secret)
        for peer in peers:
            first, second = sorted((peer, dropped), key=order.__getitem__)
            try:
                key = tx.pairwise_mask_key(
                    cfg, private, adverts[peer].masking_key, first, second
                )
            except ValueError:  # a key the coordinator refuses on arrival
                raise SecAggAborted(
                    f"the masking key {peer!r} advertised agrees on no secret with "
                    f"{dropped!r}'s, so their mask cannot be removed",
                    stage=Stage.UNMASK.value,
                ) from None
            # ``peer`` added this mask with sign +1 if ``dropped`` comes first.
            remove.append((key, -1 if first == dropped else 1))
    masks.combine(total, remove)
    return tuple(sorted(offenders, key=order.__getitem__))


@dataclass(frozen=True, slots=True)
class Recovered:
    """A rebuilt secret and the holders whose revealed shares were forged."""

    secret: bytes
    offenders: tuple[str, ...]


def recover_secret(
    cfg: SecAggConfig,
    *,
    dealer: str,
    kind: ShareKind,
    revealed: Mapping[str, RevealedShare],
    is_committed: Callable[[bytes], bool],
    is_dealt: Callable[[str, RevealedShare], bool],
    candidate: bytes | None = None,
) -> Recovered:
    """Rebuild ``dealer``'s secret of ``kind`` from ``revealed`` (holder -> share).

    ``is_committed`` checks a rebuilt secret against the dealer's stage-0
    commitment; ``is_dealt(holder, share)`` checks a revealed share against the
    dealer's signed commitment to the share it dealt ``holder``.

    ``candidate`` is the secret a batch already rebuilt from the first ``threshold``
    shares (None: rebuild it here). Raises :class:`ShareRejected` naming the dealer
    if validly signed shares do not rebuild its commitment, and
    :class:`SecAggAborted` if fewer than ``threshold`` shares remain.
    """
    t = cfg.threshold
    stage = str(Stage.UNMASK)
    holders = list(revealed)
    if len(holders) >= t:
        secret = _combine(revealed, holders, t) if candidate is None else candidate
        if secret and is_committed(secret):
            return Recovered(secret, ())
    forged = tuple(
        holder for holder, share in revealed.items() if not is_dealt(holder, share)
    )
    signed = [h for h in holders if h not in forged]
    if len(signed) < t:
        raise SecAggAborted(
            f"only {len(signed)} valid shares of the {kind} of {dealer!r} were "
            f"revealed, fewer than the threshold {t}"
            + (f"; {list(forged)} revealed forged shares" if forged else ""),
            stage=stage,
        )
    secret = _combine(revealed, signed, t)
    if not (secret and is_committed(secret)):
        raise ShareRejected(
            f"the shares {dealer!r} signed do not rebuild the {kind} it committed to: "
            "it dealt inconsistent shares",
            offender=dealer,
            stage=stage,
        )
    return Recovered(secret, forged)


def _combine(
    revealed: Mapping[str, RevealedShare], holders: list[str], t: int
) -> bytes:
    try:
        shares = [Share(revealed[h].index, revealed[h].value) for h in holders[:t]]
        return combine_shares(shares, threshold=t)
    except ValueError:
        # A malformed share (bad length, duplicate index): let the blame path decide.
        return b""


def _combine_needed(
    revealed: _Revealed, needed: list[tuple[str, ShareKind]], t: int
) -> dict[tuple[str, ShareKind], bytes]:
    """The secrets of ``needed`` from their first ``t`` shares, in one batch.

    Empty if any share in the batch is unusable or any group is short: each secret
    is then rebuilt on its own, where a bad share can be told from a good one.
    """
    try:
        groups = [
            [Share(s.index, s.value) for s in list(revealed[key].values())[:t]]
            for key in needed
        ]
        return dict(zip(needed, combine_batch(groups, threshold=t), strict=True))
    except (KeyError, ValueError):
        return {}
