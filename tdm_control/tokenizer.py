"""The one tokenizer, shared by training and runtime: one token per scalar, as in Gato.

A continuous value x is mu-law encoded,

    F(x) = sign(x) * log(|x| * mu + 1) / log(M * mu + 1),   mu = 100, M = 256,

clipped to [-1, 1] and cut into `bins` uniform bins, token ids 0 .. bins-1.
One more id, `separator`, marks the start of each action. An environment step
is laid out as

    [o_t (n tokens), r_t (1 token), separator, a_t (m tokens)]

so conditioning on (history, o_t) predicts r_t, on (history, o_t, r_t) the
action (a behaviour-cloning policy), and on (history, o_t, r_t, a_t) the next
observation (the dynamics model).

Each token also carries its *local position*, an index into the model's table
of places in a step (Gato's local position encoding). The table has N
observation places, the reward, the separator and M action places:

    local index:  0 .. N-1 (o)   N (r)   N+1 (sep)   N+2 .. N+1+M (a)

A specialist has N = n and M = m, so the local position is just the place in
the step. A generalist trained on environments of several sizes has N and M of
the largest; an environment with fewer scalars leaves the rest unused, and a
token's local index always says what it stands for (the i-th observation, the
reward, ...), whatever the environment.
"""

from __future__ import annotations

import dataclasses
import enum
import functools

import numpy as np


class Role(enum.IntEnum):
    """What a token in the step layout stands for; training masks select targets by role."""

    OBSERVATION = 0
    REWARD = 1
    SEPARATOR = 2
    ACTION = 3


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """Mu-law + uniform-bin tokenizer and the step layout for n observations and m actions."""

    observation_size: int
    """n, observation scalars per step."""
    action_size: int
    """m, action scalars per step."""
    mu: float = 100.0
    """Mu-law companding strength."""
    max_value: float = 256.0
    """M: values of magnitude M map to +-1 before clipping."""
    bins: int = 1024
    """Uniform bins over [-1, 1] in the companded space."""
    observation_slots: int = 0
    """N, observation places in the model's local-position table (a generalist's largest n); 0: n."""
    action_slots: int = 0
    """M, action places in the local-position table (a generalist's largest m); 0: m."""

    def __post_init__(self) -> None:
        if self.observation_size < 1 or self.action_size < 1:
            raise ValueError(f"need at least one observation and one action, got n={self.observation_size}, "
                             f"m={self.action_size}")
        if self.bins < 2:
            raise ValueError(f"need at least 2 bins, got {self.bins}")
        # 0 means this layout's own size: stored as that size, so equal tokenizers compare equal.
        object.__setattr__(self, "observation_slots", self.observation_slots or self.observation_size)
        object.__setattr__(self, "action_slots", self.action_slots or self.action_size)
        n, m = self.slots
        if n < self.observation_size or m < self.action_size:
            raise ValueError(f"a step of n={self.observation_size} observations and m={self.action_size} actions "
                             f"does not fit a model with {n} observation and {m} action places")

    # ------------------------------------------------------ local positions
    @property
    def slots(self) -> tuple[int, int]:
        """(N, M): observation and action places of the local-position table."""
        return self.observation_slots, self.action_slots

    @property
    def local_size(self) -> int:
        """Entries of the model's local-position table: N + 1 + 1 + M."""
        n, m = self.slots
        return n + 2 + m

    @functools.cached_property
    def local(self) -> np.ndarray:
        """(step_tokens,) int64 local index of each place in this layout's step (see the module docstring)."""
        n_slots, _ = self.slots
        n, m = self.observation_size, self.action_size
        return np.concatenate([np.arange(n), [n_slots, n_slots + 1], n_slots + 2 + np.arange(m)]).astype(np.int64)

    def local_positions(self, count: int, start: int = 0) -> np.ndarray:
        """(count,) local indices of `count` consecutive tokens, the first at place `start` of a step."""
        return self.local[(start + np.arange(count)) % self.step_tokens]

    def local_roles(self) -> np.ndarray:
        """(local_size,) the Role of each local index: the same for every layout of these slots."""
        n, m = self.slots
        return np.array([Role.OBSERVATION] * n + [Role.REWARD, Role.SEPARATOR] + [Role.ACTION] * m, dtype=np.int64)

    # ------------------------------------------------------------- vocabulary
    @property
    def separator(self) -> int:
        """Token id of the separator before each action."""
        return self.bins

    @property
    def vocab_size(self) -> int:
        """Bins plus the separator."""
        return self.bins + 1

    @property
    def step_tokens(self) -> int:
        """Tokens per environment step: n + 1 + 1 + m."""
        return self.observation_size + 2 + self.action_size

    @property
    def reward_offset(self) -> int:
        """Index of the reward token within a step."""
        return self.observation_size

    @property
    def action_offset(self) -> int:
        """Index of the first action token within a step."""
        return self.observation_size + 2

    def roles(self) -> np.ndarray:
        """(step_tokens,) the Role of each position in a step."""
        n, m = self.observation_size, self.action_size
        return np.array([Role.OBSERVATION] * n + [Role.REWARD, Role.SEPARATOR] + [Role.ACTION] * m,
                        dtype=np.int64)

    # ------------------------------------------------------ values <-> tokens
    def compand(self, x: np.ndarray) -> np.ndarray:
        """Mu-law F(x), clipped to [-1, 1]."""
        x = np.asarray(x, dtype=np.float64)
        y = np.sign(x) * np.log1p(np.abs(x) * self.mu) / np.log1p(self.max_value * self.mu)
        return np.clip(y, -1.0, 1.0)

    def expand(self, y: np.ndarray) -> np.ndarray:
        """Inverse of `compand` on [-1, 1]."""
        y = np.asarray(y, dtype=np.float64)
        return np.sign(y) * np.expm1(np.abs(y) * np.log1p(self.max_value * self.mu)) / self.mu

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Values of any shape -> token ids in [0, bins), int64, same shape."""
        y = self.compand(x)
        ids = np.floor((y + 1.0) / 2.0 * self.bins).astype(np.int64)
        return np.clip(ids, 0, self.bins - 1)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Token ids -> the values at their bin centres (companded space), float64.

        The separator has no value; decoding it raises ValueError.
        """
        ids = np.asarray(ids)
        if np.any((ids < 0) | (ids >= self.bins)):
            raise ValueError("decode got a token id outside the value bins (the separator or garbage)")
        centres = (ids.astype(np.float64) + 0.5) / self.bins * 2.0 - 1.0
        return self.expand(centres)

    def quantisation_bound(self, x: np.ndarray) -> np.ndarray:
        """Largest |decode(encode(x)) - x| possible for values like x: half a bin, mapped back.

        Values beyond +-M are clipped and excluded (their error is unbounded).
        """
        half_bin = 1.0 / self.bins
        y = self.compand(x)
        lo = self.expand(np.clip(np.abs(y) - half_bin, 0.0, 1.0))
        hi = self.expand(np.clip(np.abs(y) + half_bin, 0.0, 1.0))
        return np.maximum(np.abs(x) - lo, hi - np.abs(x)) + 1e-12

    # ------------------------------------------------------------ sequences
    def tokenize_steps(self, observations: np.ndarray, rewards: np.ndarray,
                       actions: np.ndarray) -> np.ndarray:
        """Lays out steps as tokens.

        Args:
          observations: (B, T, n).
          rewards: (B, T) reward on arriving at each observation.
          actions: (B, T, m).

        Returns:
          (B, T * step_tokens) int64 token ids.
        """
        observations = np.asarray(observations)
        b, t, n = observations.shape
        if n != self.observation_size or actions.shape[-1] != self.action_size:
            raise ValueError(f"tokenizer is for n={self.observation_size}, m={self.action_size}; "
                             f"got observations (..., {n}) and actions (..., {actions.shape[-1]})")
        sep = np.full((b, t, 1), self.separator, dtype=np.int64)
        steps = np.concatenate([self.encode(observations), self.encode(np.asarray(rewards))[..., None],
                                sep, self.encode(actions)], axis=-1)  # (B, T, step_tokens)
        return steps.reshape(b, t * self.step_tokens)

    def detokenize_steps(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inverse of `tokenize_steps` up to quantisation: (B, T*step_tokens) -> obs, rewards, actions."""
        b = tokens.shape[0]
        steps = np.asarray(tokens).reshape(b, -1, self.step_tokens)  # (B, T, step_tokens)
        n = self.observation_size
        return (self.decode(steps[..., :n]), self.decode(steps[..., n]),
                self.decode(steps[..., self.action_offset:]))

    @classmethod
    def from_description(cls, settings: dict, observation_size: int | None = None,
                         action_size: int | None = None) -> Tokenizer:
        """The tokenizer `describe()` recorded (models exported before slots existed: a specialist's),
        or, with sizes given, the same model's tokenizer for a layout of those sizes (a generalist's task)."""
        return cls(settings["observation_size"] if observation_size is None else observation_size,
                   settings["action_size"] if action_size is None else action_size,
                   mu=settings["mu"], max_value=settings["max_value"], bins=settings["bins"],
                   observation_slots=settings.get("observation_slots", settings["observation_size"]),
                   action_slots=settings.get("action_slots", settings["action_size"]))

    def describe(self) -> dict:
        """Settings a model file records, JSON-serialisable."""
        return {"mu": self.mu, "max_value": self.max_value, "bins": self.bins,
                "separator": self.separator, "vocab_size": self.vocab_size,
                "observation_size": self.observation_size, "action_size": self.action_size,
                "observation_slots": self.slots[0], "action_slots": self.slots[1],
                "step_layout": ["observation"] * self.observation_size + ["reward", "separator"]
                + ["action"] * self.action_size}
