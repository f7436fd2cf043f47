"""A point mass with a known optimum, and a policy to propose actions: a test bed for every planner."""

import numpy as np

from tdm_control.dynamics.base import Dynamics

DT = 0.1
TARGET = 1.0


def step(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """obs (..., 2) = position (m), velocity (m/s); action (..., 1) = acceleration / 2 m/s^2."""
    position, velocity = obs[..., 0], obs[..., 1]
    velocity = velocity + DT * 2.0 * action[..., 0]
    return np.stack([position + DT * velocity, velocity], axis=-1)


def reward(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """1 at rest on the target, less elsewhere; the mean action (0) leaves the mass where it is."""
    return np.exp(-((obs[..., 0] - TARGET) ** 2)) * np.exp(-0.1 * obs[..., 1] ** 2)


class ToyDynamics(Dynamics):
    """Exact model of the point mass; proposes a timid policy that only damps the velocity."""

    name = "toy"
    proposes = True

    def rollout(self, history, obs, actions):
        k, n, _ = actions.shape
        out = np.empty((k, n, 2))
        state = np.broadcast_to(obs, (k, 2)).astype(np.float64)
        for t in range(n):
            state = step(state, actions[:, t])
            out[:, t] = state
        return out, reward(out, actions)

    def rollout_with_proposals(self, history, obs, noise):
        k, n, m = noise.shape
        out, actions = np.empty((k, n, 2)), np.empty((k, n, m))
        state = np.broadcast_to(obs, (k, 2)).astype(np.float64)
        for t in range(n):
            actions[:, t] = np.clip(-0.5 * state[:, 1:2] + noise[:, t], -1, 1)
            state = step(state, actions[:, t])
            out[:, t] = state
        return out, reward(out, actions), actions


def closed_loop_return(policy, steps: int = 40) -> tuple[float, np.ndarray]:
    """Runs policy(obs) -> action (1,) on the point mass from rest at 0; returns the return and the actions."""
    obs = np.zeros(2)
    total, actions = 0.0, []
    for _ in range(steps):
        action = np.asarray(policy(obs), dtype=np.float64)
        actions.append(action)
        obs = step(obs, action)
        total += float(reward(obs, action))
    return total, np.array(actions)
