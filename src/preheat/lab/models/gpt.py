"""A small GPT (decoder-only transformer), in the manner of nanoGPT's ``model.py``.

Read top to bottom: the config, causal self-attention, the MLP, a transformer block, and the
model (token + learned position embeddings -> blocks -> final LayerNorm -> linear head).

Where the LayerNorms sit is ``GPTConfig.norm``:

- ``"pre"`` (the default; GPT-2, nanoGPT): ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``, and a
  final LayerNorm ``ln_f`` before the head. The residual stream itself is never normalised.
- ``"post"`` (the original Transformer, Vaswani et al. 2017): ``x = ln_1(x + attn(x));
  x = ln_2(x + mlp(x))``. Every block's output is already normalised, so there is no final
  LayerNorm: ``ln_f`` is ``nn.Identity`` and the head reads the last block's output. Post-LN is
  the arrangement that needs learning-rate warmup (Xiong et al. 2020, "On Layer Normalization
  in the Transformer Architecture": at initialisation its gradients near the output are large).

Both arrangements have the same parameters (post-LN lacks only ``ln_f``), drawn in the same
order with the same initialisation, so one seed gives the same weights for both.

Initialisation follows GPT-2: every Linear and Embedding weight is drawn from N(0, 0.02), biases
are zero, and the two projections that write into the residual stream in each block (attention
output and MLP output) are drawn from N(0, 0.02 / sqrt(2 * n_layer)), so the residual stream's
variance does not grow with depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: Where a block's LayerNorms sit: before each residual branch (``pre``) or after each residual
#: sum (``post``).
NORMS = ("pre", "post")


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a :class:`GPT`.

    - ``vocab_size``: number of distinct tokens.
    - ``block_size``: the longest sequence the model reads (number of learned positions).
    - ``n_layer``, ``n_head``, ``n_embd``: depth, attention heads per layer and width;
      ``n_embd`` must be divisible by ``n_head``.
    - ``dropout``: dropout probability after the embeddings, on the attention weights and after
      each residual branch (0 disables it, the default).
    - ``tie_weights``: when true (the default, as in GPT-2 and nanoGPT) the output head shares its
      weight matrix with the token embedding; when false the head has its own weights.
    - ``norm``: ``"pre"`` (the default) or ``"post"``: where each block's LayerNorms sit (see the
      module docstring).
    """

    vocab_size: int
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.0
    tie_weights: bool = True
    norm: str = "pre"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid; expected an integer >= 1")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                "expected n_embd to be a multiple of n_head"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r} is invalid; expected a number in [0, 1)")
        if self.norm not in NORMS:
            raise ValueError(
                f"norm={self.norm!r} is invalid; expected one of {', '.join(repr(n) for n in NORMS)}"
            )


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``i`` only sees positions ``<= i``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)  # query, key, value in one matmul
        self.proj = nn.Linear(config.n_embd, config.n_embd)  # writes into the residual stream
        self.attn_dropout = nn.Dropout(config.dropout)
        self.proj_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        q, k, v = self.qkv(x).split(channels, dim=2)
        # (batch, time, channels) -> (batch, heads, time, channels per head)
        q, k, v = (t.view(batch, time, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        # Attention written out (not F.scaled_dot_product_attention): its fused CPU kernel has
        # no double backward, which Hessian-vector products (preheat.probes.sharpness) need.
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        future = torch.ones(time, time, dtype=torch.bool, device=x.device).triu(diagonal=1)
        weights = self.attn_dropout(scores.masked_fill(future, float("-inf")).softmax(dim=-1))
        y = (weights @ v).transpose(1, 2).contiguous().view(batch, time, channels)
        return self.proj_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(n, 4n) -> GELU -> Linear(4n, n)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)  # writes into the residual stream
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """A transformer block. Pre-LN (``norm="pre"``): ``x + attn(ln_1(x))``, then
    ``x + mlp(ln_2(x))``. Post-LN (``norm="post"``): ``ln_1(x + attn(x))``, then
    ``ln_2(x + mlp(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.post_norm = config.norm == "post"
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.ln_1(x + self.attn(x))
            return self.ln_2(x + self.mlp(x))
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """A GPT language model: token ids ``(batch, time)`` -> next-token logits ``(batch, time, vocab)``.

    The weights are initialised with the global torch RNG; seed it (``torch.manual_seed``) before
    building the model for reproducible weights.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        # Post-LN blocks end in a LayerNorm already: no final one (the original Transformer's way).
        self.ln_f = nn.LayerNorm(config.n_embd) if config.norm == "pre" else nn.Identity()
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.token_embedding.weight

        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits for the next token at every position of ``idx`` (``time <= block_size``)."""
        batch, time = idx.shape
        if time > self.config.block_size:
            raise ValueError(
                f"sequence length {time} exceeds block_size={self.config.block_size}; "
                f"expected at most {self.config.block_size} tokens"
            )
        positions = torch.arange(time, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def num_parameters(self) -> int:
        """Number of distinct trainable parameters (a tied head is counted once)."""
        return sum(p.numel() for p in self.parameters())
