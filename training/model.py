"""The transformer dynamics model: a decoder-only sequence model over per-scalar tokens.

One token per scalar (see `tdm_control.tokenizer`). Each token's input is the
sum of its token embedding and an embedding of its place in the step layout
(Gato's local position); order within the window comes from rotary position
embeddings in attention, which depend only on the distance between tokens, so
the run-time sliding window can drop old tokens from its key/value cache
without recomputing the rest.

Attention is a sliding window: each token sees itself and the C - 1 tokens
before it (C = `context_tokens`), in training as at run time. Information from
further back still flows through the layers, through the keys and values of
the tokens in the window, so a run-time cache that drops the oldest token
computes exactly what the training forward computes on the same stream.

Two forward paths share the weights:
* `forward(tokens, local)`: a whole sequence with the banded causal mask, for training;
* `step(tokens, local, positions, cache_mask, past)`: new tokens against a
  fixed-size key/value cache, for autoregressive inference and ONNX export.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class TDMConfig:
    vocab_size: int = 1025
    """Token ids: value bins plus the separator."""
    step_tokens: int = 8
    """Entries of the local-position table: tokens per environment step (n + 1 + 1 + m) for a
    specialist, N + 1 + 1 + M for a generalist (see `tdm_control.tokenizer`)."""
    observation_slots: int = 0
    """N, observation places of the local-position table: a generalist's largest n; 0: a specialist's n."""
    action_slots: int = 0
    """M, action places of the local-position table: a generalist's largest m; 0: a specialist's m."""
    context_tokens: int = 64
    """C: the attention window, tokens a token attends to (itself included)."""
    d_model: int = 128
    """Width of the residual stream."""
    n_layers: int = 3
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads; d_model must divide evenly."""
    d_ff: int = 512
    """Hidden width of each block's MLP."""
    dropout: float = 0.0
    """Dropout on attention and MLP outputs during training."""
    rope_base: float = 10000.0
    """Base of the rotary embedding's geometric frequency ladder."""
    value_octaves: int = 9
    """Each value token's embedding also gets a learned projection of Fourier features (octaves
    1, 2, 4, ... of its bin centre in companded space), so neighbouring bins start out similar and
    the model need not learn the order of 1024 bins from data alone. 0 turns it off. Export bakes it
    into the embedding table: run time sees a plain table."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.n_heads} heads of even width")
        for name in ("vocab_size", "step_tokens", "context_tokens", "d_model", "n_layers", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.value_octaves < 0:
            raise ValueError(f"value_octaves must be >= 0, got {self.value_octaves}")
        if bool(self.observation_slots) != bool(self.action_slots):
            raise ValueError(f"give observation_slots and action_slots both (a generalist's table) or neither, got "
                             f"{self.observation_slots} and {self.action_slots}")
        if self.observation_slots and self.step_tokens != self.observation_slots + 2 + self.action_slots:
            raise ValueError(f"step_tokens {self.step_tokens} must be observation_slots {self.observation_slots} "
                             f"+ 2 + action_slots {self.action_slots}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def value_basis(vocab_size: int, octaves: int) -> torch.Tensor:
    """(V, 2 * octaves + 1) features of each token's bin centre y in [-1, 1]: y, sin(pi 2^k y), cos(pi 2^k y).

    The last token (the separator) has no value: its row is zero.
    """
    bins = vocab_size - 1
    y = (torch.arange(bins, dtype=torch.float32) + 0.5) / bins * 2.0 - 1.0  # (bins,)
    angles = math.pi * y[:, None] * (2.0 ** torch.arange(octaves, dtype=torch.float32))[None]  # (bins, octaves)
    features = torch.cat([y[:, None], torch.sin(angles), torch.cos(angles)], dim=1)
    return torch.cat([features, torch.zeros(1, features.shape[1])], dim=0)


def rotary(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (T, head_dim / 2) for absolute positions (T,)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, Dh/2)
    return torch.cos(angles), torch.sin(angles)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates pairs (x[..., :Dh/2], x[..., Dh/2:]) of x (B, H, T, Dh) by the position angles."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def sliding_window_mask(t: int, window: int, device: torch.device) -> torch.Tensor | None:
    """(T, T) bool, True where query i may attend key j: i - window < j <= i. None when T <= window."""
    if t <= window:
        return None
    i = torch.arange(t, device=device)[:, None]
    j = torch.arange(t, device=device)[None, :]
    return (j <= i) & (j > i - window)


class Attention(nn.Module):
    def __init__(self, config: TDMConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def _heads(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(self.n_heads * self.head_dim, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, self.head_dim).transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def _merge(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return self.proj(y.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))  # (B, T, d)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                band: torch.Tensor | None) -> torch.Tensor:
        """Sliding-window causal self-attention over a sequence x (B, T, d).

        band: (T, T) bool, True where a token may attend; None for plain causal (T <= C).
        """
        q, k, v = self._heads(x, cos, sin)
        dropout = self.dropout if self.training else 0.0
        if band is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=band, dropout_p=dropout)
        return self._merge(y)

    def step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache_mask: torch.Tensor,
             past_k: torch.Tensor, past_v: torch.Tensor):
        """New tokens x (B, T, d) attend to a cache (B, H, C, Dh) and causally to each other.

        cache_mask (T, C) is added to the cache scores: 0 where a slot is visible,
        a large negative number where it is empty or too old. The cache is never
        concatenated (that would copy it every call); scores are computed in two
        parts and softmaxed together. Returns the output and the new keys and
        values (B, H, T, Dh), which the caller writes into its cache.
        """
        q, k, v = self._heads(x, cos, sin)
        t = x.shape[1]
        scale = 1.0 / math.sqrt(self.head_dim)
        causal = torch.triu(torch.full((t, t), -1e9, dtype=x.dtype, device=x.device), diagonal=1)
        cache_scores = torch.matmul(q, past_k.transpose(-1, -2)) * scale + cache_mask  # (B, H, T, C)
        new_scores = torch.matmul(q, k.transpose(-1, -2)) * scale + causal  # (B, H, T, T)
        weights = torch.softmax(torch.cat([cache_scores, new_scores], dim=-1), dim=-1)
        c = past_k.shape[2]
        y = torch.matmul(weights[..., :c], past_v) + torch.matmul(weights[..., c:], v)  # (B, H, T, Dh)
        return self._merge(y), k, v


class Block(nn.Module):
    def __init__(self, config: TDMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_ff), nn.GELU(),
                                 nn.Linear(config.d_ff, config.d_model), nn.Dropout(config.dropout))

    def forward(self, x, cos, sin, band):
        x = x + self.attn(self.ln1(x), cos, sin, band)
        return x + self.mlp(self.ln2(x))

    def step(self, x, cos, sin, cache_mask, past_k, past_v):
        y, k, v = self.attn.step(self.ln1(x), cos, sin, cache_mask, past_k, past_v)
        x = x + y
        return x + self.mlp(self.ln2(x)), k, v


class TDM(nn.Module):
    """Decoder-only transformer predicting the next token of `[o, r, separator, a]` steps."""

    def __init__(self, config: TDMConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        if config.value_octaves:
            self.register_buffer("value_features", value_basis(config.vocab_size, config.value_octaves),
                                 persistent=False)
            self.value_projection = nn.Linear(2 * config.value_octaves + 1, config.d_model, bias=False)
        self.local_embedding = nn.Embedding(config.step_tokens, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embedding_table(self) -> torch.Tensor:
        """(V, d) the token embeddings, value features included; also the output head (tied)."""
        table = self.token_embedding.weight
        if self.config.value_octaves:
            table = table + self.value_projection(self.value_features)
        return table

    def baked(self) -> "TDM":
        """An equal model whose embedding table already holds the value features: what is exported."""
        plain = TDM(dataclasses.replace(self.config, value_octaves=0))
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("value_projection")}
        with torch.no_grad():
            state["token_embedding.weight"] = self.embedding_table().detach().clone()
        plain.load_state_dict(state)
        return plain.eval()

    def forward(self, tokens: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for the token after each of tokens (B, T), local (B, T)."""
        t = tokens.shape[1]
        cos, sin = rotary(torch.arange(t, device=tokens.device), self.config.head_dim, self.config.rope_base)
        band = sliding_window_mask(t, self.config.context_tokens, tokens.device)
        table = self.embedding_table()
        x = F.embedding(tokens, table) + self.local_embedding(local)  # (B, T, d)
        for block in self.blocks:
            x = block(x, cos, sin, band)
        return self.ln_f(x) @ table.t()  # (B, T, V), output head tied to the input embeddings

    def step(self, tokens: torch.Tensor, local: torch.Tensor, positions: torch.Tensor,
             cache_mask: torch.Tensor, past: list[torch.Tensor]):
        """Incremental forward for inference.

        Args:
          tokens: (B, T) new token ids.
          local: (T,) their places in the step layout.
          positions: (T,) their absolute positions (rotary angles).
          cache_mask: (T, C) additive mask over the cache slots.
          past: [k_0, v_0, k_1, v_1, ...], each (B, H, C, Dh): keys already rotated.

        Returns:
          logits (B, T, V) and [new_k_0, new_v_0, ...], each (B, H, T, Dh).
        """
        cos, sin = rotary(positions, self.config.head_dim, self.config.rope_base)
        table = self.embedding_table()
        x = F.embedding(tokens, table) + self.local_embedding(local)[None]  # (B, T, d)
        present = []
        for i, block in enumerate(self.blocks):
            x, k, v = block.step(x, cos, sin, cache_mask, past[2 * i], past[2 * i + 1])
            present += [k, v]
        return self.ln_f(x) @ table.t(), present


class IncrementalTDM(nn.Module):
    """`TDM.step` with flat inputs and outputs, the signature exported to ONNX."""

    def __init__(self, model: TDM) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens, local, positions, cache_mask, *past):
        logits, present = self.model.step(tokens, local, positions, cache_mask, list(past))
        return (logits, *present)
