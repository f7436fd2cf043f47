"""Autoregressive decoding of a TDM with a sliding-window key/value cache, in numpy.

The decoder does not know what runs the network: it calls `runner(feeds)`,
which is an ONNX Runtime session at run time and the torch module during the
export's parity check, so both are driven by exactly the same decoding logic.

Network signature (see `training.model.IncrementalTDM`):
  inputs   tokens (B, T) int64, local (T,) int64, positions (T,) int64,
           cache_mask (T, C) float32, past_k_i / past_v_i (B, H, C, Dh) float32
  outputs  logits (B, T, V), new_k_i / new_v_i (B, H, T, Dh)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tdm_control.history import History
from tdm_control.tokenizer import Tokenizer

Runner = Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]]
HIDDEN = np.float32(-1e9)
"""Additive attention mask value for cache slots a token may not see."""


class RingCache:
    """Keys and values of the last tokens, at most `capacity` of them, for every layer.

    Slots are reused oldest-first, so appending never moves the cache. Rotary
    embeddings make attention depend only on distances, so the order of slots
    does not matter; `mask` decides which slots each new token may see, keeping
    every token's view within the C tokens it was trained on.
    """

    def __init__(self, layers: int, batch: int, heads: int, capacity: int, head_dim: int) -> None:
        shape = (batch, heads, capacity, head_dim)  # (B, H, C, Dh)
        self.keys = [np.zeros(shape, np.float32) for _ in range(layers)]
        self.values = [np.zeros(shape, np.float32) for _ in range(layers)]
        self.capacity = capacity
        self.written_at = np.full(capacity, -1, dtype=np.int64)  # token counter per slot, -1 = empty
        self.count = 0  # tokens written so far = absolute position of the next token

    def mask(self, new_tokens: int) -> np.ndarray:
        """(T, C) additive mask: token j sees slots written at counter > count - C + j."""
        j = np.arange(new_tokens)[:, None]  # (T, 1)
        visible = (self.written_at[None, :] >= 0) & (self.written_at[None, :] > self.count - self.capacity + j)
        return np.where(visible, np.float32(0.0), HIDDEN).astype(np.float32)

    def positions(self, new_tokens: int) -> np.ndarray:
        return np.arange(self.count, self.count + new_tokens, dtype=np.int64)

    def write(self, new_keys: Sequence[np.ndarray], new_values: Sequence[np.ndarray]) -> None:
        """Stores the keys/values (B, H, T, Dh) of T new tokens over the oldest slots."""
        t = new_keys[0].shape[2]
        if t > self.capacity:
            raise ValueError(f"{t} new tokens exceed the cache of {self.capacity}")
        slots = (self.count + np.arange(t)) % self.capacity
        for cache_k, cache_v, k, v in zip(self.keys, self.values, new_keys, new_values):
            cache_k[:, :, slots] = k
            cache_v[:, :, slots] = v
        self.written_at[slots] = self.count + np.arange(t)
        self.count += t

    def expand(self, batch: int) -> None:
        """Repeats a batch-1 cache `batch` times (the shared prefix, for K candidates)."""
        self.keys = [np.repeat(k, batch, axis=0) for k in self.keys]
        self.values = [np.repeat(v, batch, axis=0) for v in self.values]


class TDMDecoder:
    """Builds token prefixes from an episode's history and decodes rollouts and proposals."""

    def __init__(self, runner: Runner, tokenizer: Tokenizer, context_tokens: int, layers: int,
                 heads: int, head_dim: int) -> None:
        self.run = runner
        self.tokenizer = tokenizer
        self.context = context_tokens
        self.layers, self.heads, self.head_dim = layers, heads, head_dim
        s, n = tokenizer.step_tokens, tokenizer.observation_size
        self.history_steps = max(0, (context_tokens - (n + 1)) // s)
        """Past steps that fit in the window with the current observation and reward."""
        self.passes = 0
        """Network calls made so far (for benchmarks)."""
        self._bin_values = tokenizer.decode(np.arange(tokenizer.bins))  # (bins,) value of each bin centre

    # ------------------------------------------------------------------ core
    def feed(self, cache: RingCache, tokens: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Runs new tokens (B, T) through the network, stores their keys/values, returns logits (B, T, V)."""
        t = tokens.shape[1]
        feeds = {"tokens": tokens.astype(np.int64), "local": local.astype(np.int64),
                 "positions": cache.positions(t), "cache_mask": cache.mask(t)}
        for i in range(self.layers):
            feeds[f"past_k_{i}"] = cache.keys[i]
            feeds[f"past_v_{i}"] = cache.values[i]
        outputs = self.run(feeds)
        self.passes += 1
        cache.write(outputs[1::2], outputs[2::2])
        return outputs[0]

    def _greedy(self, logits: np.ndarray) -> np.ndarray:
        """Most likely value token (B,) from logits (B, V); the separator is never a value."""
        return np.argmax(logits[:, : self.tokenizer.bins], axis=-1).astype(np.int64)

    def prefix(self, history: History, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and local positions of `[recent steps..., o_t, r_t]` that fit in the window."""
        tok = self.tokenizer
        past_obs, past_rewards, past_actions = history.arrays()
        h = min(len(history), self.history_steps)
        parts = []
        if h:
            parts.append(tok.tokenize_steps(past_obs[None, -h:], past_rewards[None, -h:],
                                            past_actions[None, -h:])[0])
        parts.append(tok.encode(np.asarray(obs, dtype=np.float64)))
        parts.append(tok.encode(np.array([history.current_reward])))
        tokens = np.concatenate(parts)
        return tokens, tok.local_positions(len(tokens))

    def start(self, history: History, obs: np.ndarray, batch: int) -> RingCache:
        """A cache holding the prefix, expanded to `batch` rows; its next token is the separator."""
        cache = RingCache(self.layers, 1, self.heads, self.context, self.head_dim)
        tokens, local = self.prefix(history, obs)
        self.feed(cache, tokens[None], local)
        cache.expand(batch)
        return cache

    # ------------------------------------------------------------- rollouts
    def _known_tokens(self, step: int, batch: int, reward_tokens: np.ndarray, actions: np.ndarray | None):
        """Tokens (B, T) and local positions (T,) fed at the start of a step: [r'_step,] sep[, a_step].

        The first step's reward is already in the prefix.
        """
        tok = self.tokenizer
        parts = [np.full((batch, 1), tok.separator, dtype=np.int64)]
        first = tok.reward_offset + 1
        if step > 0:
            parts.insert(0, reward_tokens[:, step - 1:step])
            first = tok.reward_offset
        last = tok.reward_offset + 2
        if actions is not None:
            parts.append(actions)
            last = tok.step_tokens
        return np.concatenate(parts, axis=1), tok.local[first:last]

    def _decode_outcome(self, cache: RingCache, logits: np.ndarray, obs_tokens: np.ndarray,
                        reward_tokens: np.ndarray, step: int) -> None:
        """Greedily decodes o'_{step+1} (n tokens) and r'_{step+1} into the output arrays.

        `logits` (B, T, V) are those of the pass that fed the step's last action token.
        """
        n, local = self.tokenizer.observation_size, self.tokenizer.local
        for i in range(n):
            obs_tokens[:, step, i] = self._greedy(logits[:, -1])
            logits = self.feed(cache, obs_tokens[:, step, i:i + 1], local[i:i + 1])
        reward_tokens[:, step] = self._greedy(logits[:, -1])

    def rollout(self, history: History, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy predictions for K action sequences.

        Args:
          history: past steps and the reward r_t received on arriving at `obs`.
          obs: (n,) o_t.
          actions: (K, N, m) in [-1, 1].

        Returns:
          observation tokens (K, N, n) and reward tokens (K, N), int64.
        """
        tok = self.tokenizer
        k, horizon, _ = actions.shape
        cache = self.start(history, obs, k)
        action_tokens = tok.encode(actions)  # (K, N, m)
        obs_tokens = np.empty((k, horizon, tok.observation_size), dtype=np.int64)
        reward_tokens = np.empty((k, horizon), dtype=np.int64)
        for step in range(horizon):
            tokens, local = self._known_tokens(step, k, reward_tokens, action_tokens[:, step])
            logits = self.feed(cache, tokens, local)
            self._decode_outcome(cache, logits, obs_tokens, reward_tokens, step)
        return obs_tokens, reward_tokens

    def rollout_with_proposals(self, history: History, obs: np.ndarray,
                               noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rollouts whose actions are the model's proposals plus `noise` (K, N, m).

        At each step the model, conditioned on the predicted trajectory so far,
        gives a distribution over each action token; its mean plus the noise,
        clipped to [-1, 1], is the action taken and fed back.

        Returns:
          observation tokens (K, N, n), reward tokens (K, N), actions (K, N, m) float64.
        """
        tok = self.tokenizer
        k, horizon, m = noise.shape
        cache = self.start(history, obs, k)
        obs_tokens = np.empty((k, horizon, tok.observation_size), dtype=np.int64)
        reward_tokens = np.empty((k, horizon), dtype=np.int64)
        actions = np.empty((k, horizon, m))
        for step in range(horizon):
            tokens, local = self._known_tokens(step, k, reward_tokens, None)
            logits = self.feed(cache, tokens, local)
            for i in range(m):
                actions[:, step, i] = np.clip(self._mean_value(logits[:, -1]) + noise[:, step, i], -1.0, 1.0)
                token = self.tokenizer.encode(actions[:, step, i])[:, None]
                logits = self.feed(cache, token, tok.local[tok.action_offset + i:tok.action_offset + i + 1])
            self._decode_outcome(cache, logits, obs_tokens, reward_tokens, step)
        return obs_tokens, reward_tokens, actions

    def _mean_value(self, logits: np.ndarray) -> np.ndarray:
        """Mean (B,) of the value distribution the logits (B, V) put over the bins."""
        values = logits[:, : self.tokenizer.bins].astype(np.float64)
        p = np.exp(values - values.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        # Row by row (not a BLAS matrix-vector product, whose rounding depends on the batch size), so a
        # candidate's proposal does not depend on how many candidates share the call.
        return (p * self._bin_values).sum(axis=1)

    def propose(self, history: History, obs: np.ndarray) -> np.ndarray:
        """Behaviour-cloning action (m,): the mean the model, read as a policy, gives at (history, o_t, r_t)."""
        _, _, actions = self.rollout_with_proposals(history, obs, np.zeros((1, 1, self.tokenizer.action_size)))
        return actions[0, 0]
