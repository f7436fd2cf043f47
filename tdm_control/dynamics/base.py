"""The one call every dynamics model answers, so every planner works with every model."""

from __future__ import annotations

import abc

import numpy as np

from tdm_control.history import History


class Dynamics(abc.ABC):
    """Predicts where K candidate action sequences lead from the current observation."""

    name: str = "dynamics"
    history_steps: int = 0
    """Past steps the model conditions on; 0 for a Markov model."""
    proposes: bool = False
    """Whether the model also proposes actions (a sequence model read as a policy)."""
    action_repeat: int = 1
    """Control steps each model step holds its action: one predicted step spans
    `action_repeat` control steps of the task, and the horizon N counts model steps."""
    observation_limit: float = float("inf")
    """Largest |value| of an observation the model can take (an exported TDM: its tokenizer's range);
    the planner node refuses a state whose observation exceeds it instead of planning from it."""
    warnings: tuple[str, ...] = ()
    """What was found worth a warning at load (an exported model without a weights digest)."""
    notes: tuple[str, ...] = ()
    """What the model says about itself at load, for the start-up log (a generalist: whether the task
    was in its training set)."""

    @abc.abstractmethod
    def rollout(self, history: History, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rolls K action sequences forward from `obs`.

        Args:
          history: the episode's past steps (may be empty).
          obs: (n,) the current observation o_t.
          actions: (K, N, m) candidate actions a_t .. a_{t+N-1}, in [-1, 1].

        Returns:
          pred_obs (K, N, n): o_{t+1} .. o_{t+N};
          pred_reward (K, N): the reward received on arriving at each of them.
        """

    def rollout_with_proposals(self, history: History, obs: np.ndarray,
                               noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rolls K trajectories whose actions are the model's own proposals plus noise.

        Along each trajectory, at every step the model proposes the mean action
        for the predicted observation, `noise` is added, and the model predicts
        the outcome of the noisy action (paper section 5.1.1).

        Args:
          history, obs: as for `rollout`.
          noise: (K, N, m) added to each proposal before clipping to [-1, 1].

        Returns:
          pred_obs (K, N, n), pred_reward (K, N), and the actions taken (K, N, m).
        """
        raise TypeError(f"model {self.name!r} does not propose actions; proposal planning needs a sequence "
                        f"model such as an exported TDM")

    @staticmethod
    def check_actions(actions: np.ndarray, action_size: int, dtype: type = np.float64,
                      what: str = "actions") -> np.ndarray:
        """`actions` as a (K, N, action_size) array of `dtype`; any other shape is a ValueError saying
        which shape was expected (every model checks its input here)."""
        actions = np.asarray(actions, dtype=dtype)
        if actions.ndim != 3 or actions.shape[2] != action_size:
            raise ValueError(f"{what} must be (K, N, {action_size}), got {actions.shape}")
        return actions

    def memory_bytes(self, samples: int, horizon: int) -> int:
        """Bytes one rollout of `samples` sequences of `horizon` model steps allocates at its peak.

        An estimate, generous rather than tight, for the bound on planner sizes
        (`tdm_control.planning.check_plan_memory`). This default counts float64 predictions of
        64 numbers per step; models override it with what they really allocate.
        """
        return 8 * samples * horizon * 64

    def reset(self) -> None:
        """Forgets anything cached for the current episode."""

    def close(self) -> None:
        """Releases threads, sessions or files."""
