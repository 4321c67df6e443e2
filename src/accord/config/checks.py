"""Combinations of settings that cannot work together, refused when the file is loaded.

Each section validates its own keys; what spans sections (secure aggregation with
a rule that must see each update, an async run with a judge that needs the whole
round, a robust rule whose bound the round size cannot meet) is checked here, once
the whole document is valid, so the error names the key to change before round 1
rather than failing in round 7.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from accord.config.schema import FedConfig
from accord.config.training import StrategyConfig
from accord.errors import ConfigError

__all__ = ["check_compatibility", "refuse_attack", "refuse_trees"]


def check_compatibility(cfg: FedConfig) -> None:
    """Refuse the first combination of ``cfg``'s sections that cannot work together."""
    _check_model(cfg)
    if cfg.gates.fairness and cfg.evaluation.sensitive is None:
        raise ConfigError(
            "a fairness gate (gates.max_demographic_parity_difference or "
            "gates.max_equalized_odds_difference) needs the groups to compare: "
            'declare [evaluation] sensitive = "COLUMN"'
        )
    _check_strategies(cfg)
    if cfg.personalization.method != "off" and not cfg.evaluation.federated:
        raise ConfigError(
            "personalization is scored at the federated evaluation, which is off: "
            'set [evaluation] federated = true or personalization.method = "off"'
        )
    if cfg.personalization.method in ("fedper", "ditto") and cfg.strategy.scaffold:
        raise ConfigError(
            f"{cfg.personalization.method} and SCAFFOLD do not compose: SCAFFOLD's "
            "control variates correct the whole model's steps, which "
            f"{cfg.personalization.method} changes at each site; turn one off",
            key="personalization.method",
        )
    _check_secure(cfg)
    _check_privacy(cfg)
    _check_robustness(cfg)
    _check_compression(cfg)
    if cfg.simulation.engine == "ray" and cfg.model.kind == "gbdt":
        raise ConfigError(
            "gradient-boosted trees are grown in the coordinator's process (their "
            "histogram rounds have no executor yet), so the Ray engine would not be "
            'used; leave engine = "process" for a gbdt federation',
            key="simulation.engine",
        )
    if cfg.simulation.engine == "ray" and cfg.secure_aggregation.mode != "off":
        raise ConfigError(
            "secure aggregation is not implemented on the Ray engine (its "
            "multi-stage rounds run in worker processes only); use engine = "
            '"process" with secure aggregation',
            key="simulation.engine",
        )
    _check_participation(cfg)
    _check_async(cfg)
    roster = cfg.deployment.participants
    unknown = sorted(set(cfg.deployment.declared_examples) - set(roster))
    if roster and unknown:
        raise ConfigError(
            f"names {', '.join(unknown)}, not in deployment.participants; fix the "
            "name or add the site to the roster",
            key="deployment.declared_examples",
        )
    if cfg.selection.min_participants > cfg.data.sites:
        raise ConfigError(
            f"needs {cfg.selection.min_participants} participants but the data has "
            f"only {cfg.data.sites} sites; lower it or raise data.sites",
            key="selection.min_participants",
        )
    _check_rule(cfg.strategy, _expected_round_size(cfg))
    if cfg.strategy.aggregation == "trimmed_mean":
        expected = max(cfg.selection.min_participants, 1)
        if int(cfg.strategy.trim * expected) * 2 >= expected and expected > 1:
            raise ConfigError(
                f"trim={cfg.strategy.trim} would discard every update of a round "
                f"with {expected} participants; lower it",
                key="strategy.trim",
            )


#: Sections that change how a task's updates are made or combined: they mean
#: nothing to trees grown from summed histograms (``docs/trees.md``).
_NOT_FOR_TREES: tuple[tuple[str, Callable[[FedConfig], bool]], ...] = (
    ("privacy.level", lambda c: c.privacy.level != "off"),
    ("secure_aggregation.mode", lambda c: c.secure_aggregation.mode == "ckks"),
    ("attack", lambda c: c.attack is not None),
    ("compression.method", lambda c: c.compression.method != "none"),
    ("personalization.method", lambda c: c.personalization.method != "off"),
    ("contribution.keep_updates", lambda c: c.contribution.keep_updates),
    ("robustness.scores", lambda c: c.robustness.scores),
    ("strategy.aggregation", lambda c: c.strategy.aggregation != "mean"),
    ("strategy.server_optimizer", lambda c: c.strategy.server_optimizer != "sgd"),
    ("selection.fraction", lambda c: c.selection.fraction != 1.0),
    ("selection.count", lambda c: c.selection.count is not None),
    ("round.mode", lambda c: c.round.mode != "sync"),
    ("round.close_fraction", lambda c: c.round.close_fraction < 1),
    ("simulation.engine", lambda c: c.simulation.engine != "process"),
    ("simulation.slowdown", lambda c: bool(c.simulation.slowdown)),
)


def _check_model(cfg: FedConfig) -> None:
    """``[task]`` for task models; ``[trees]`` only with the settings trees have."""
    if cfg.model.kind == "task":
        if cfg.task is None:
            raise ConfigError(
                "is missing: name the task's factory (module:object), or set "
                '[model] kind = "gbdt" for gradient-boosted trees',
                key="task.factory",
            )
        if cfg.trees is not None:
            raise ConfigError(
                '[trees] applies to [model] kind = "gbdt"; remove one of them',
                key="trees",
            )
        return
    if cfg.task is not None:
        raise ConfigError(
            'gradient-boosted trees ([model] kind = "gbdt") are grown by accord '
            "itself and take no task; remove [task]",
            key="task",
        )
    for key, used in _NOT_FOR_TREES:
        if used(cfg):
            raise ConfigError(
                'is not supported for gradient-boosted trees ([model] kind = "gbdt") '
                "yet: trees are grown from summed histograms, every site in every "
                "sum, plainly or under masking (docs/trees.md); remove it",
                key=key,
            )


#: What an async run refuses, and why: each needs a round's full set of updates.
_ASYNC_REFUSED: tuple[tuple[str, str], ...] = (
    (
        "secure_aggregation.mode",
        "secure aggregation unmasks a round's sum once every selected site sent its "
        "share, and an async buffer mixes sites trained from different versions",
    ),
    (
        "privacy.level",
        "participant-level DP is accounted per round with a sampling rate, which "
        "an async buffer (sites contributing as fast as they train) does not have",
    ),
    (
        "strategy.scaffold",
        "SCAFFOLD's control variates assume every update starts from the model "
        "the control variate was computed for",
    ),
    (
        "robustness",
        "anomaly scores compare the updates of one round against each other",
    ),
    (
        "contribution.keep_updates",
        "contribution scores replay the kept updates as FedAvg rounds",
    ),
)


def _check_participation(cfg: FedConfig) -> None:
    """Refuse participation settings that cannot do what they say."""
    rnd = cfg.round
    if rnd.close_fraction < rnd.quorum:
        raise ConfigError(
            f"close_fraction {rnd.close_fraction:g} closes a round before its quorum "
            f"of {rnd.quorum:g} could answer, so every round would fail; raise "
            "close_fraction to at least round.quorum",
            key="round.close_fraction",
        )
    if cfg.secure_aggregation.mode == "off":
        return
    if cfg.strategy.weighting == "uniform":
        raise ConfigError(
            "in a secure round each site weights its own masked update by its "
            "example count before the sum; uniform weighting is not implemented "
            'there: use weighting = "examples", or turn secure aggregation off',
            key="strategy.weighting",
        )
    if rnd.close_fraction < 1:
        raise ConfigError(
            "a secure round's sum unmasks only after its stages, which wait for "
            "every surviving site; close_fraction is not implemented there (use "
            "deadline_s to cut stragglers)",
            key="round.close_fraction",
        )


def _check_async(cfg: FedConfig) -> None:
    """Refuse in async mode what relies on a round's synchronized updates."""
    if cfg.round.mode != "async":
        return
    active = {
        "secure_aggregation.mode": cfg.secure_aggregation.mode != "off",
        "privacy.level": cfg.privacy.level != "off",
        "strategy.scaffold": cfg.strategy.scaffold,
        "robustness": cfg.robustness.scoring,
        "contribution.keep_updates": cfg.contribution.keep_updates,
    }
    for key, why in _ASYNC_REFUSED:
        if active[key]:
            raise ConfigError(
                f'round.mode = "async" does not compose with {key}: {why}; turn one '
                "of them off",
                key=key,
            )
    if cfg.strategy.aggregation != "mean":
        raise ConfigError(
            'round.mode = "async" folds a buffer of updates with FedBuff\'s '
            f"staleness-weighted mean; aggregation = {cfg.strategy.aggregation!r} "
            'is not implemented for it: use aggregation = "mean"',
            key="strategy.aggregation",
        )
    sites = len(cfg.deployment.participants) or cfg.data.sites
    if cfg.round.buffer_size > sites:
        raise ConfigError(
            f"async buffer_size {cfg.round.buffer_size} is more than the {sites} "
            "sites; "
            "a version would wait on updates from the same sites again and again",
            key="round.buffer_size",
        )


def _check_compression(cfg: FedConfig) -> None:
    """Refuse compression where the secure sum needs what it would change."""
    method, secure = cfg.compression.method, cfg.secure_aggregation.mode
    if method == "topk" and secure != "off":
        raise ConfigError(
            "top-k sparsification does not compose with secure aggregation: each "
            "site keeps different coordinates, and the masked sum needs every site's "
            'dense vector; use method = "q8" without secure aggregation, or "none"',
            key="compression.method",
        )
    if method in ("q8", "q4") and secure == "ckks":
        raise ConfigError(
            f"{method} does not compose with CKKS: ciphertexts of quantized values "
            'are no smaller; use mode = "masking" (quantized sums are packed '
            'there) or method = "none"',
            key="compression.method",
        )
    if method in ("q8", "q4") and secure == "masking":
        _check_quantized_masking(cfg, bits=8 if method == "q8" else 4)


def _check_quantized_masking(cfg: FedConfig, *, bits: int) -> None:
    """Refuse q8/q4 under masking where the packed ring field would overflow."""
    method = cfg.compression.method
    if cfg.privacy.level == "participant":
        raise ConfigError(
            f"{method} with masking does not carry distributed DP noise: each "
            "site's noise share needs the 32-bit fixed-point encoding; use "
            'method = "none" with privacy.level = "participant"',
            key="compression.method",
        )
    most = ((1 << bits) - 1) // 2
    if cfg.data.partition == "natural" and cfg.selection.count is None:
        return  # the number of sites is the data's: checked when a round starts
    sites = cfg.selection.count or cfg.data.sites
    if sites > most:
        raise ConfigError(
            f"{method} under secure aggregation sums {bits}-bit integers in one "
            f"{bits}-bit field of the ring: {sites} sites x 2 x max|q| must stay "
            f"below 2^{bits}, so it sums at most {most} sites per round. Use "
            + ('method = "q8", ' if bits == 4 else "")
            + 'fewer sites per round ([selection] count) or method = "none"',
            key="compression.method",
        )


def _check_strategies(cfg: FedConfig) -> None:
    """Refuse SCAFFOLD and q-FedAvg where what they rely on is hidden or altered."""
    strategy = cfg.strategy
    if strategy.scaffold:
        key = "strategy.scaffold"
        if strategy.aggregation != "mean":
            raise ConfigError(
                "SCAFFOLD keeps c equal to the mean of the sites' control variates "
                f"c_i; aggregation = {strategy.aggregation!r} drops or reweights "
                "updates, which leaves c out of step with the c_i that the sites "
                "keep, so every later correction c - c_i is biased. Use "
                'aggregation = "mean" with scaffold',
                key=key,
            )
        if cfg.secure_aggregation.mode != "off":
            raise ConfigError(
                "accord's secure rounds mask and sum the model-shaped update only; "
                "SCAFFOLD's delta_c would have to travel beside it in the clear, "
                "which shows the coordinator each site's gradient drift. Turn "
                "scaffold off (FedProx also corrects drift) or secure aggregation off",
                key=key,
            )
        if cfg.privacy.level == "participant":
            raise ConfigError(
                "participant-level DP clips each update to one norm, and delta_c "
                "(the update divided by the local steps times the learning rate) "
                "would take nearly all of it, leaving the model's part to the "
                "noise; use level = 'record' (DP-SGD at the sites) with scaffold",
                key=key,
            )
        if cfg.contribution.keep_updates:
            raise ConfigError(
                "contribution scores replay the kept model updates as FedAvg "
                "rounds, which SCAFFOLD's rounds are not; set keep_updates = false",
                key=key,
            )
    if strategy.aggregation == "qfedavg" and cfg.secure_aggregation.mode != "off":
        raise ConfigError(
            "q-FedAvg weighs each site's update by its own loss and update norm, "
            "which secure aggregation hides from the coordinator; turn one off",
            key="secure_aggregation.mode",
        )


def _check_robustness(cfg: FedConfig) -> None:
    """Scores and update attacks need individual updates, which masking hides."""
    if cfg.contribution.keep_updates and not cfg.store.checkpoints:
        raise ConfigError(
            "keep_updates stores the updates next to the checkpoints; set [store] "
            "checkpoints = true, or keep_updates = false",
            key="contribution.keep_updates",
        )
    if cfg.secure_aggregation.mode == "off":
        return
    if cfg.contribution.keep_updates:
        raise ConfigError(
            "under secure aggregation the coordinator sees only the sum of a "
            "round's updates, never one site's, so none can be kept and no "
            "per-site contribution (leave-one-out, Shapley) can be computed; set "
            "keep_updates = false, or turn secure aggregation off",
            key="contribution.keep_updates",
        )
    if cfg.robustness.scoring:
        raise ConfigError(
            "anomaly scores and quarantine need every individual update, and under "
            "secure aggregation the coordinator sees only their sum (no score can "
            "be computed or stored); turn [robustness] off or secure aggregation off",
            key="robustness",
        )
    if cfg.attack is not None and cfg.attack.updates:
        raise ConfigError(
            f"attack kind {cfg.attack.kind!r} rewrites updates, which secure "
            "aggregation hides from the simulation engine too; use label_flip or "
            "backdoor, or turn secure aggregation off",
            key="attack.kind",
        )
    if cfg.attack is not None and cfg.attack.examples is not None:
        raise ConfigError(
            "attack.examples rewrites the example count a malicious site claims, "
            "which a secure round folds into the masked sum where the simulation "
            "engine cannot reach it (there every site is weighted up to "
            "max_examples); remove examples, or turn secure aggregation off",
            key="attack.examples",
        )


def refuse_trees(cfg: FedConfig, command: str) -> None:
    """:class:`ConfigError` for gradient-boosted trees: not deployable yet.

    Deployed sites exchange model updates over gRPC; the per-level histogram
    exchange that trees need has no wire messages yet, so ``accord coordinator``
    and ``accord participant`` refuse a gbdt federation before they listen or dial.
    """
    if cfg.model.kind == "gbdt":
        raise ConfigError(
            f"gradient-boosted trees run in `accord simulate` only for now; "
            f"`{command}` refuses them: the deployed protocol carries model updates, "
            "not the per-level gradient histograms trees are grown from "
            "(docs/trees.md, section 6)",
            key="model.kind",
        )


def refuse_attack(cfg: FedConfig, command: str) -> None:
    """:class:`ConfigError` if ``cfg`` declares an ``[attack]``: simulation only.

    ``accord coordinator`` and ``accord participant`` call it, so that poisoning
    meant to evaluate defences can never run in a real federation.
    """
    if cfg.attack is not None:
        raise ConfigError(
            f"[attack] is for evaluating defences in `accord simulate` only; "
            f"`{command}` refuses to run with it. Remove the [attack] table from "
            "this fed.toml (keep a copy for simulations)",
            key="attack",
        )


def _expected_round_size(cfg: FedConfig) -> int:
    """Participants a round selects, as far as the configuration alone tells."""
    sites = len(cfg.deployment.participants) or cfg.data.sites
    if cfg.round.mode == "async":
        return cfg.round.buffer_size
    wanted = (
        math.ceil(cfg.selection.fraction * sites)
        if cfg.selection.count is None
        else min(cfg.selection.count, sites)
    )
    return max(wanted, cfg.selection.min_participants)


def _check_secure(cfg: FedConfig) -> None:
    """Refuse secure-aggregation settings that cannot keep their promise."""
    sec = cfg.secure_aggregation
    if sec.mode == "off":
        return
    key = "secure_aggregation.mode"
    if cfg.strategy.aggregation != "mean":
        raise ConfigError(
            f"strategy.aggregation = {cfg.strategy.aggregation!r} needs every "
            "individual update, which secure aggregation exists to hide from the "
            'coordinator; use aggregation = "mean" with secure aggregation, or turn '
            "it off to use a robust rule",
            key=key,
        )
    n = _expected_round_size(cfg)
    if n < 3:
        raise ConfigError(
            f"rounds select {n} participant(s); secure aggregation needs at least 3 "
            "(with 2, each learns the other's update from the sum)",
            key=key,
        )
    if sec.mode == "ckks":
        if sec.threshold is not None or sec.degree is not None:
            raise ConfigError(
                "threshold and degree belong to masking; CKKS has neither (the key "
                "holder's key decides who can decrypt): remove them",
                key="secure_aggregation.threshold",
            )
        return
    if sec.threshold is not None:
        holders = n if sec.degree is None else min(n, sec.degree + 1)
        if sec.threshold <= holders // 2 or sec.threshold > holders:
            raise ConfigError(
                f"threshold {sec.threshold} with {holders} share holders is not safe: "
                "at or below half, a coordinator can show two halves of the "
                "holders different survivor sets and rebuild both masks of one "
                f"participant; above {holders}, no secret can ever be rebuilt. "
                f"Choose a threshold in {holders // 2 + 1}..{holders}",
                key="secure_aggregation.threshold",
            )
    if sec.degree is not None and sec.degree < 2:
        raise ConfigError(
            "a neighbour degree below 2 leaves a participant one neighbour, who "
            "would learn its update",
            key="secure_aggregation.degree",
        )


def _check_privacy(cfg: FedConfig) -> None:
    """Refuse DP settings whose guarantee the rest of the configuration breaks."""
    if cfg.privacy.level != "participant":
        return
    key = "privacy.level"
    if cfg.strategy.aggregation != "mean":
        raise ConfigError(
            f"participant-level DP bounds one participant's effect on the mean of "
            f"clipped updates; strategy.aggregation = "
            f"{cfg.strategy.aggregation!r} has another sensitivity that accord does "
            'not account: use aggregation = "mean"',
            key=key,
        )
    mode = cfg.secure_aggregation.mode
    if mode == "ckks":
        raise ConfigError(
            "participant-level DP with CKKS would need each site to add its share of "
            "noise under encryption, which accord does not do; use "
            'secure_aggregation = "masking" (distributed noise) or turn it off '
            "(central noise)",
            key=key,
        )
    if mode == "masking" and cfg.privacy.adaptive_clip:
        raise ConfigError(
            "adaptive_clip counts the updates within the clip, which masking hides "
            "from the coordinator; give a fixed clip with secure aggregation",
            key="privacy.adaptive_clip",
        )


#: The rules each robust-rule option of ``[strategy]`` applies to.
_RULE_KEYS: dict[str, tuple[str, ...]] = {
    "attackers": ("krum", "multi_krum", "bulyan"),
    "select": ("multi_krum",),
    "tau": ("centered_clip",),
    "iterations": ("centered_clip", "geometric_median"),
    "tolerance": ("geometric_median",),
    "smoothing": ("geometric_median",),
    "norm_bound": ("norm_bounding",),
    "root_examples": ("fltrust",),
    "q": ("qfedavg",),
}


def _check_rule(strategy: StrategyConfig, n: int) -> None:
    """Refuse options of another rule, and rules whose bound the rounds cannot meet."""
    rule = strategy.aggregation
    for key, rules in _RULE_KEYS.items():
        if getattr(strategy, key) is not None and rule not in rules:
            raise ConfigError(
                f"applies to aggregation = {' or '.join(map(repr, rules))}, not "
                f"{rule!r}; remove it or choose that rule",
                key=f"strategy.{key}",
            )
    if rule == "norm_bounding" and strategy.norm_bound is None:
        raise ConfigError(
            "norm_bounding needs strategy.norm_bound, the L2 norm each update is "
            "clipped to (a little above honest updates' norms: see "
            "docs/robustness.md)",
            key="strategy.norm_bound",
        )
    f = strategy.attackers
    if rule in ("krum", "multi_krum"):
        need = 2 * (f or 0) + 3
        bound = "n > 2f + 2"
    elif rule == "bulyan":
        need = 4 * (f or 0) + 3
        bound = "n >= 4f + 3"
    else:
        return
    if n < need:
        told = "attackers = 0" if f is None else f"attackers = {f}"
        alternative = (
            "weighted_trimmed_mean or multi_krum suit small consortia"
            if rule == "bulyan"
            else "weighted_trimmed_mean or median work with any number"
        )
        raise ConfigError(
            f"{rule} needs {bound}: with {told} a round needs at least {need} "
            f"participants, but rounds select {n}; lower attackers, select more "
            f"participants, or choose another rule ({alternative})",
            key="strategy.attackers" if f is not None else "strategy.aggregation",
        )
    if strategy.select is not None and strategy.select > n - (f or 0):
        raise ConfigError(
            f"multi_krum selects at most n - f = {n - (f or 0)} of the {n} "
            f"participants a round selects, not {strategy.select}; lower it",
            key="strategy.select",
        )
