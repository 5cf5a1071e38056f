"""``shakespeare-char``: a character-level language model (a small GPT) on Shakespeare's plays.

The text is the corpus shipped with the package (``preheat/data/shakespeare.txt.gz``, eight
plays, about 1.1 M characters, 78 distinct ones; see ``preheat/data/SOURCE.md``), or any UTF-8
text file given as ``data=PATH``. The vocabulary is the sorted set of the characters of the whole
text; the first 90% of the text is for training and the last 10% for validation.

- Training batches: ``batch_size`` windows of ``block_size + 1`` characters at random positions
  of the training text, drawn by a ``torch.Generator`` seeded with the run's seed; the model reads
  the first ``block_size`` characters and predicts each next one.
- Evaluation: mean cross-entropy and next-character accuracy over ``eval_batches x
  eval_batch_size`` fixed validation windows, evenly spaced over the validation text (the same for
  every seed and every run).
- ``chance_accuracy`` is ``1 / vocab_size``; ``constant_loss`` is the cross-entropy on the
  validation windows' targets of the training text's character frequencies
  (:func:`~preheat.lab.tasks.base.constant_prediction_loss`): the loss of a model that learned
  only which characters are common.
"""

from __future__ import annotations

import gzip
import importlib.resources
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.nn import functional as F

from preheat.lab.models.gpt import GPT, NORMS, GPTConfig
from preheat.lab.tasks.base import Task, constant_prediction_loss

#: Model presets of ``size``: (block_size, n_layer, n_head, n_embd). ``medium`` is nanoGPT's
#: shakespeare-char model. Parameter counts for the 78-character vocabulary are in docs/tasks.md.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"block_size": 64, "n_layer": 2, "n_head": 2, "n_embd": 64},
    "small": {"block_size": 128, "n_layer": 4, "n_head": 4, "n_embd": 128},
    "medium": {"block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384},
}

TRAIN_FRACTION = 0.9


def shipped_text() -> str:
    """The Shakespeare corpus shipped with the package, decompressed."""
    resource = importlib.resources.files("preheat") / "data" / "shakespeare.txt.gz"
    return gzip.decompress(resource.read_bytes()).decode("utf-8")


class ShakespeareChar(Task):
    """Character-level GPT on Shakespeare (or on the text file ``data``).

    Options (all keywords):

    - ``size``: ``"tiny"`` (default), ``"small"`` or ``"medium"``, a preset of :data:`SIZES`.
    - ``block_size``, ``n_layer``, ``n_head``, ``n_embd``: override one field of the preset.
    - ``dropout``: dropout probability in the model (default 0).
    - ``tie_weights``: share the output head with the token embedding (default true).
    - ``norm``: ``"pre"`` (default; pre-LayerNorm blocks and a final LayerNorm, as GPT-2) or
      ``"post"`` (post-LayerNorm blocks, ``x = LN(x + attn(x)); x = LN(x + mlp(x))``, no final
      LayerNorm, as the original Transformer); see :mod:`preheat.lab.models.gpt`.
    - ``data``: path of a UTF-8 text file to use instead of the shipped corpus.
    - ``eval_batches``, ``eval_batch_size``: number and size of the batches of fixed validation
      windows that ``evaluate`` reads (default 4 x 32 windows).
    """

    name = "shakespeare-char"

    def __init__(
        self,
        size: str = "tiny",
        block_size: int | None = None,
        n_layer: int | None = None,
        n_head: int | None = None,
        n_embd: int | None = None,
        dropout: float = 0.0,
        tie_weights: bool = True,
        norm: str = "pre",
        data: str | Path | None = None,
        eval_batches: int = 4,
        eval_batch_size: int = 32,
    ) -> None:
        if size not in SIZES:
            raise ValueError(f"size={size!r} is unknown; expected one of {', '.join(SIZES)}")
        if norm not in NORMS:  # checked before the text is read (GPTConfig checks it too)
            raise ValueError(f"norm={norm!r} is invalid; expected one of {', '.join(repr(n) for n in NORMS)}")
        for option, value in (("eval_batches", eval_batches), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{option}={value!r} is invalid; expected an integer >= 1")
        overrides = {"block_size": block_size, "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd}
        shape = {**SIZES[size], **{k: v for k, v in overrides.items() if v is not None}}

        text = _read_text(data)
        self.vocab: list[str] = sorted(set(text))
        codes = np.array([ord(c) for c in self.vocab])
        # Each character's index in the vocabulary, for the whole text at once.
        encoded = np.searchsorted(codes, np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))
        tokens = torch.from_numpy(encoded.astype(np.int64))
        split = int(TRAIN_FRACTION * len(tokens))
        self.train_data: torch.Tensor = tokens[:split]
        self.val_data: torch.Tensor = tokens[split:]

        self.config = GPTConfig(
            vocab_size=len(self.vocab), dropout=dropout, tie_weights=tie_weights, norm=norm, **shape
        )
        needed = self.config.block_size + 1
        if len(self.val_data) < needed:
            raise ValueError(
                f"data={str(data) if data is not None else '<shipped corpus>'!r} is too short: its "
                f"validation part (last 10%) has {len(self.val_data)} characters; expected at "
                f"least block_size + 1 = {needed}"
            )
        self.eval_batches = eval_batches
        self.eval_batch_size = eval_batch_size
        self.chance_accuracy = 1.0 / len(self.vocab)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` (every character must be in the vocabulary)."""
        index = {c: i for i, c in enumerate(self.vocab)}
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, tokens: torch.Tensor | list[int]) -> str:
        """The text of token ids ``tokens``."""
        return "".join(self.vocab[int(t)] for t in tokens)

    def model(self, seed: int) -> GPT:
        """A fresh GPT of this task's shape; its weights depend only on ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return GPT(self.config)

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless ``(inputs, targets)`` pairs of shape ``(batch_size, block_size)``.

        Window starts are uniform over the training text, drawn from a generator seeded with
        ``seed``; ``targets`` is ``inputs`` shifted by one character.
        """
        generator = torch.Generator().manual_seed(seed)
        starts_limit = len(self.train_data) - self.config.block_size
        while True:
            starts = torch.randint(starts_limit, (batch_size,), generator=generator)
            yield self._windows(self.train_data, starts)

    def loss(
        self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean next-character cross-entropy over all positions, and next-character accuracy."""
        device = next(model.parameters()).device
        inputs, targets = (t.to(device) for t in batch)
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        accuracy = (logits.detach().argmax(dim=-1) == targets).float().mean()
        return loss, accuracy

    @property
    def constant_loss(self) -> float:  # type: ignore[override]
        """The validation loss of predicting the training text's character frequencies."""
        _, targets = self._windows(self.val_data, self._eval_starts())
        return constant_prediction_loss(self.train_data, targets, len(self.vocab))

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Mean loss and accuracy over the fixed, evenly spaced validation windows."""
        starts = self._eval_starts()
        count = len(starts)
        total_loss, total_accuracy = 0.0, 0.0
        for chunk in starts.split(self.eval_batch_size):
            loss, accuracy = self.loss(model, self._windows(self.val_data, chunk))
            total_loss += loss.item() * len(chunk)
            total_accuracy += accuracy.item() * len(chunk)
        return {"val_loss": total_loss / count, "val_accuracy": total_accuracy / count}

    def _eval_starts(self) -> torch.Tensor:
        """The starts of the ``eval_batches x eval_batch_size`` validation windows, evenly spaced."""
        last_start = len(self.val_data) - self.config.block_size - 1
        return torch.linspace(0, last_start, self.eval_batches * self.eval_batch_size).round().long()

    def _windows(self, data: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``data[s : s + T]`` and targets ``data[s + 1 : s + T + 1]`` for each start ``s``."""
        offsets = torch.arange(self.config.block_size + 1)
        windows = data[starts[:, None] + offsets]
        return windows[:, :-1], windows[:, 1:]


def _read_text(data: str | Path | None) -> str:
    """The shipped corpus, or the UTF-8 text of the file ``data``."""
    if data is None:
        return shipped_text()
    path = Path(data).expanduser()
    if not path.is_file():
        raise ValueError(f"data={str(data)!r} is not a file; expected the path of a UTF-8 text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"data={str(data)!r} is not UTF-8 text (byte {err.start}); expected the path "
                         "of a UTF-8 text file") from None
    if not text:
        raise ValueError(f"data={str(data)!r} is empty; expected the path of a UTF-8 text file")
    return text
