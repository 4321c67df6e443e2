"""Poisoning attacks, for evaluating defences in simulation (never in a deployment).

``[attack]`` in ``fed.toml`` names the malicious sites and the attack. Data attacks
(label flipping, a backdoor trigger) are dataset transforms applied to those sites'
training rows when the simulation builds its data (:mod:`accord.attacks.data`);
update attacks (sign flipping, scaling / model replacement, Gaussian noise, ALIE,
IPM, min-max, min-sum) rewrite their updates inside the simulation engine, where
every update passes (:mod:`accord.attacks.updates`,
:mod:`accord.simulation.adversary`). ``accord coordinator`` and ``accord
participant`` refuse a configuration with ``[attack]``
(:func:`accord.config.refuse_attack`).
"""

from accord.attacks.sites import malicious_sites
from accord.attacks.updates import OMNISCIENT, UpdateAttack, alie_z

__all__ = ["OMNISCIENT", "UpdateAttack", "alie_z", "malicious_sites"]
