"""Record-level DP-SGD for :class:`~accord.task.torch.TorchTask`, through Opacus.

A train task that declares a :class:`~accord.privacy.dpsgd.DpSgdPlan` is trained by
Opacus's pieces, made private **once per site** and reused across rounds:

- a :class:`opacus.GradSampleModule` around the site's own copy of the model, which
  computes each example's gradient;
- a :class:`opacus.optimizers.DPOptimizer` around the task's optimizer, which clips
  each example's gradient (over all parameters together) to ``clip``, sums them,
  adds Gaussian noise of standard deviation ``noise_multiplier * clip`` and divides
  by the expected batch size ``sampling_rate * rows``;
- Opacus's :class:`~opacus.utils.uniform_sampler.UniformWithReplacementSampler`
  (the sampler of its ``DPDataLoader``), which draws every row independently with
  probability ``sampling_rate`` (Poisson sampling) for exactly the declared number
  of steps; the drawn rows are indexed out of the site's tensors directly (a
  ``DataLoader`` would collate them one by one, several times slower).

Each round the global weights are copied into the site's module (not assigned: the
optimizer and the hooks keep their tensors), the optimizer's state is cleared (a
round starts fresh, as without DP) and the declared rate, steps, clip and noise are
set. Opacus's own accountant is not used: the guarantee is accounted by
:mod:`accord.privacy.accountant` from the declared plan, at the coordinator and in
the site's ledger, so the numbers are the ones ``docs/privacy.md`` states.

Noise comes from a ``torch.Generator`` seeded per round from
:class:`~accord.privacy.noise.NoiseSource` (63 bits of the OS's CSPRNG, or the
tests-only ``noise_seed``), with Opacus's ``secure_mode`` sampling (the sum of four
Gaussians, Holohan and Braghin 2021) against floating-point attacks. torch's
generator itself is not a cryptographic one (Opacus's ``PrivacyEngine`` would need
``torchcsprng`` for that, which is unmaintained); a fresh secret seed per round is
the mitigation, as in :mod:`accord.privacy.noise`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from accord.errors import MissingExtraError, TaskError
from accord.params import Params
from accord.privacy.dpsgd import DpSgdPlan
from accord.privacy.noise import NoiseSource
from accord.task.protocol import TrainConfig

try:
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without opacus
    raise MissingExtraError(
        extra="privacy", package="opacus", feature="record-level DP-SGD for torch"
    ) from exc

__all__ = ["PrivateSite", "noise_generator_seed"]

logger = logging.getLogger(__name__)


def noise_generator_seed(plan: DpSgdPlan, config: TrainConfig) -> int:
    """The seed of round ``config``'s noise generator (secret unless seeded)."""
    rng = NoiseSource(plan.noise_seed).generator(config.seed)
    return int(rng.integers(0, 2**63))


@dataclass
class PrivateSite:
    """One site's private model, optimizer and data loader, kept across rounds."""

    module: GradSampleModule
    optimizer: DPOptimizer
    sampler: UniformWithReplacementSampler
    x: torch.Tensor
    y: torch.Tensor

    @property
    def rows(self) -> int:
        """The site's number of training rows."""
        return len(self.y)

    @classmethod
    def make(
        cls,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> PrivateSite:
        """Wrap ``module`` (the site's own copy) and ``optimizer`` with Opacus."""
        try:
            private = GradSampleModule(module, loss_reduction="mean")
        except Exception as exc:  # Opacus refuses unsupported layers (BatchNorm, ...)
            raise TaskError(
                f"Opacus cannot compute per-example gradients of this model ({exc}); "
                "replace BatchNorm with GroupNorm, or use level = 'participant'"
            ) from None
        dp_optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            expected_batch_size=1,
            loss_reduction="mean",
            generator=torch.Generator(),
            secure_mode=True,
        )
        sampler = UniformWithReplacementSampler(
            num_samples=len(y), sample_rate=1.0, generator=torch.Generator()
        )
        return cls(private, dp_optimizer, sampler, x, y)

    def load(self, params: Params) -> None:
        """Copy the global weights into the site's module, in place."""
        state = self.module._module.state_dict()
        with torch.no_grad():
            for name, array in params.items():
                state[name].copy_(torch.from_numpy(np.asarray(array)))

    def fit(self, plan: DpSgdPlan, config: TrainConfig) -> float:
        """Run the plan's steps; the mean loss over the rows they sampled."""
        opt = self.optimizer
        opt.original_optimizer.state.clear()  # a round starts fresh, as without DP
        for group in opt.param_groups:
            group["lr"] = config.learning_rate
        opt.noise_multiplier = plan.noise_multiplier
        opt.max_grad_norm = plan.clip
        opt.expected_batch_size = plan.sampling_rate * self.rows
        seed = noise_generator_seed(plan, config)
        opt.generator = torch.Generator().manual_seed(seed)
        sampler = self.sampler
        sampler.sample_rate = plan.sampling_rate
        sampler.steps = plan.steps
        sampler.generator = torch.Generator().manual_seed(config.seed)
        self.module.train()
        with warnings.catch_warnings():
            # Opacus's hooks fire on the first layer, whose inputs (the data) need
            # no gradient; torch warns about it, harmlessly.
            warnings.filterwarnings(
                "ignore", message="Full backward hook is firing", category=UserWarning
            )
            return self._steps()

    def _steps(self) -> float:
        opt = self.optimizer
        total = torch.zeros((), dtype=torch.float64)
        seen = 0
        for drawn in self.sampler:
            rows = torch.as_tensor(drawn, dtype=torch.int64)
            xb, yb = self.x[rows], self.y[rows]
            opt.zero_grad(set_to_none=True)
            if len(yb):
                loss = nn.functional.cross_entropy(self.module(xb), yb)
                torch.autograd.backward(loss)
                total += loss.detach() * len(yb)
                seen += len(yb)
            else:  # an empty draw is still a step: its update is noise alone
                for p in opt.params:
                    p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)
            opt.step()
        return float(total) / seen if seen else float("nan")

    def export(self) -> Params:
        """The trained float state, copied (the module is trained again next round)."""
        return Params(
            {
                name: value.detach().numpy().copy()
                for name, value in self.module._module.state_dict().items()
                if value.is_floating_point()
            }
        )
