"""The data policy: MPC segments mixed with Brownian segments, so recorded data explore.

A dynamics model learns only what its data show. Expert-only data show the states a good
controller visits under the actions it takes; random-shooting MPC then asks the model about
Brownian action sequences it never saw (a TDM trained on planner-only bags returned 71 of 1000
where the same model on mixed data returned 809: experiments/bags/README.md). So an episode
draws one *mix* (its share of MPC segments and the Gaussian noise on MPC actions), then each
segment of `segment_steps` decisions picks its behaviour:

* MPC: the planner's action, plus Gaussian noise of std `action_noise`;
* Brownian: a fresh walk of the kind the planner samples (drift 0, variance `noise_variance`
  over the segment, first action uniform in the action box).

`tdm-train collect` (training/collect.py) and the planner node's `exploration` parameter both
act through `Explorer`, so data collected in-process and data recorded from a robot over ROS
follow one policy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from tdm_control.config import check, from_dict
from tdm_control.planning.noise import brownian_noise

MPC, BROWNIAN = "mpc", "brownian"


@dataclasses.dataclass(frozen=True)
class PolicyMix:
    weight: float = 1.0
    """Relative probability that an episode uses this mix."""
    mpc_share: float = 0.5
    """Probability that a segment is driven by the MPC planner rather than Brownian noise."""
    action_noise: float = 0.1
    """Std of Gaussian noise added to MPC actions (actions live in [-1, 1])."""

    def __post_init__(self) -> None:
        check(self.weight >= 0, "weight", f"must be >= 0, got {self.weight}")
        check(0 <= self.mpc_share <= 1, "mpc_share", f"must be in [0, 1], got {self.mpc_share}")
        check(self.action_noise >= 0, "action_noise", f"must be >= 0, got {self.action_noise}")


DEFAULT_MIXES = (
    {"weight": 0.4, "mpc_share": 1.0, "action_noise": 0.1},
    {"weight": 0.4, "mpc_share": 0.5, "action_noise": 0.3},
    {"weight": 0.2, "mpc_share": 0.0, "action_noise": 0.0},
)


@dataclasses.dataclass(frozen=True)
class ExplorationConfig:
    segment_steps: int = 50
    """Decisions (held actions, model steps) per behaviour segment."""
    noise_variance: float = 2.0
    """Variance of a Brownian segment's walk over the segment."""
    mixes: tuple[Any, ...] = DEFAULT_MIXES
    """Episode mixes: dicts with weight, mpc_share, action_noise (see PolicyMix)."""

    def __post_init__(self) -> None:
        check(self.segment_steps >= 1, "segment_steps", f"must be >= 1, got {self.segment_steps}")
        check(self.noise_variance >= 0, "noise_variance", f"must be >= 0, got {self.noise_variance}")
        check(len(self.mixes) > 0, "mixes", "needs at least one mix")
        mixes = self.policy_mixes()
        check(sum(m.weight for m in mixes) > 0, "mixes", "every weight is 0: no mix could be drawn")

    def policy_mixes(self) -> list[PolicyMix]:
        return [from_dict(PolicyMix, dict(m), where=f"mixes[{i}]") for i, m in enumerate(self.mixes)]


class Explorer:
    """One episode of the data policy: draws its mix now, then a behaviour per segment.

    Every draw comes from `rng`, in a fixed order (the mix here; per segment, its behaviour and walk;
    per MPC decision, its noise), so an episode is a pure function of the generator's seed.
    """

    def __init__(self, config: ExplorationConfig, rng: np.random.Generator, action_size: int,
                 steps: int | None = None) -> None:
        """`steps`: decisions in the episode, when known, so the last segment's walk spans what is
        left of it (None: every walk spans a whole segment)."""
        self.config = config
        self.rng = rng
        self.action_size = action_size
        self.steps = steps
        mixes = config.policy_mixes()
        weights = np.array([m.weight for m in mixes])
        self.mix = mixes[rng.choice(len(mixes), p=weights / weights.sum())]
        self._walk: np.ndarray | None = None  # (L, m) the running Brownian segment; None: an MPC one
        self.behaviour = MPC
        """The behaviour of the last decision: MPC or BROWNIAN."""

    def act(self, t: int, plan: Callable[[], np.ndarray]) -> np.ndarray:
        """The action (m,) in [-1, 1] of decision `t` of the episode; `plan()` is called only in MPC
        segments and returns the planner's action (m,)."""
        c = self.config
        k = t % c.segment_steps
        if k == 0:  # a new segment picks its behaviour
            length = c.segment_steps if self.steps is None else min(c.segment_steps, self.steps - t)
            use_mpc = self.rng.random() < self.mix.mpc_share
            self._walk = None if use_mpc else brownian_noise(self.rng, 1, max(1, length), self.action_size,
                                                             c.noise_variance)[0]
        if self._walk is None:
            self.behaviour = MPC
            action = plan() + self.mix.action_noise * self.rng.normal(size=self.action_size)
        else:
            self.behaviour = BROWNIAN
            action = self._walk[min(k, len(self._walk) - 1)]
        return np.clip(action, -1.0, 1.0)


EXPLORATION_STREAM = 2
"""The planner node's explorer of episode i draws from default_rng([seed, i, EXPLORATION_STREAM]),
a stream of its own beside the planner's default_rng([seed, i])."""


@dataclasses.dataclass(frozen=True)
class ExplorationParameters:
    """The planner node's `exploration` parameters: ROS parameters are flat, so each mix is a column
    of three arrays (`exploration.mpc_shares: [1.0, 0.5, 0.0]` is three mixes' MPC shares)."""

    segment_steps: int = 25
    """Decisions (model steps) per behaviour segment (25 x 2 control steps: 0.5 s on the shipped cartpole)."""
    noise_variance: float = 2.0
    """Variance of a Brownian segment's walk over the segment."""
    weights: tuple[float, ...] = tuple(m["weight"] for m in DEFAULT_MIXES)
    """Each mix's relative probability of being an episode's."""
    mpc_shares: tuple[float, ...] = tuple(m["mpc_share"] for m in DEFAULT_MIXES)
    """Each mix's probability that a segment is planned rather than Brownian."""
    action_noises: tuple[float, ...] = tuple(m["action_noise"] for m in DEFAULT_MIXES)
    """Each mix's std of the Gaussian noise on planned actions (actions in [-1, 1])."""

    def config(self) -> ExplorationConfig:
        n = len(self.weights)
        check(len(self.mpc_shares) == n and len(self.action_noises) == n, "exploration",
              f"weights, mpc_shares and action_noises give one value per mix: got {n}, {len(self.mpc_shares)} "
              f"and {len(self.action_noises)} values")
        mixes = tuple({"weight": w, "mpc_share": s, "action_noise": a}
                      for w, s, a in zip(self.weights, self.mpc_shares, self.action_noises))
        return ExplorationConfig(self.segment_steps, self.noise_variance, mixes)


def exploration_config(parameters: dict[str, Any]) -> ExplorationConfig | None:
    """The data policy the planner node's `exploration` parameters ask for; None for none (plain MPC).

    Raises ConfigError naming a misspelled key, a value out of range or arrays of unequal length."""
    if not parameters:
        return None
    return from_dict(ExplorationParameters, parameters, where="exploration").config()
