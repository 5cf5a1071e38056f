"""``cifar10``: a CIFAR ResNet-18 on CIFAR-10, read from the files a user downloads.

CIFAR-10 is not shipped (163 MB). The task reads the "CIFAR-10 python version" archive
(``cifar-10-python.tar.gz`` from Alex Krizhevsky's CIFAR page at the University of Toronto,
https://www.cs.toronto.edu/~kriz/cifar.html), extracted: a folder ``cifar-10-batches-py`` with
``data_batch_1`` ... ``data_batch_5`` (50 000 training images) and ``test_batch`` (10 000), each a
pickled dict with ``b"data"``, uint8 of shape (N, 3072) (the red, green, blue 32x32 planes of
each image), and ``b"labels"``, N ints in 0..9.

- Training batches: each pass over the training images is in a new random order; each image
  gets the standard augmentation (random 32x32 crop of the image zero-padded by 4 pixels, then a
  horizontal flip with probability 1/2), then per-channel normalisation. All randomness comes
  from a ``torch.Generator`` seeded with the run's seed.
- Evaluation: loss and accuracy on the test batch (its first ``limit_val`` images if given),
  normalised, without augmentation.
- ``chance_accuracy`` is 0.1; ``constant_loss`` the test batch's cross-entropy of the training
  labels' frequencies (:func:`~preheat.lab.tasks.base.constant_prediction_loss`).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from preheat.lab.models.resnet import ResNet18
from preheat.lab.tasks.base import Task, constant_prediction_loss

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

#: Per-channel mean and standard deviation of the 50 000 training images (pixel values in [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

PADDING = 4
EVAL_CHUNK = 500  # test images per forward pass in ``evaluate``


def missing_data_message(data_dir: str | Path | None) -> str:
    """What to download and where to put it, for a ``data_dir`` that holds no CIFAR-10."""
    where = "DIR" if data_dir is None else str(data_dir)
    problem = (
        "data_dir is required (the cifar10 task does not download anything)"
        if data_dir is None
        else f"data_dir={str(data_dir)!r} holds no CIFAR-10"
    )
    return (
        f"{problem}: expected {FOLDER}/ with {', '.join(TRAIN_FILES)} and {TEST_FILE} in it. "
        "Download the 'CIFAR-10 python version' archive, cifar-10-python.tar.gz (163 MB), from "
        "Alex Krizhevsky's CIFAR-10 page at the University of Toronto "
        "(https://www.cs.toronto.edu/~kriz/cifar.html) and extract it with "
        f"`tar -xzf cifar-10-python.tar.gz -C {where}`, which creates {where}/{FOLDER}; then pass "
        f"data_dir={where} (or the {FOLDER} folder itself)."
    )


class Cifar10(Task):
    """CIFAR ResNet-18 on CIFAR-10.

    Options (all keywords):

    - ``data_dir`` (required): the directory that contains ``cifar-10-batches-py``, or that
      folder itself.
    - ``width``: channels of the first ResNet stage (default 64, the standard ResNet-18; 8 or 16
      give a small, fast model with the same architecture).
    - ``limit_train``, ``limit_val``: use only the first N training / test images (quick runs).
    """

    name = "cifar10"
    chance_accuracy = 0.1

    def __init__(
        self,
        data_dir: str | Path | None = None,
        width: int = 64,
        limit_train: int | None = None,
        limit_val: int | None = None,
    ) -> None:
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width={width!r} is invalid; expected an integer >= 1 (64 is standard)")
        for option, value in (("limit_train", limit_train), ("limit_val", limit_val)):
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            if value is not None and not valid:
                raise ValueError(f"{option}={value!r} is invalid; expected an integer >= 1 or None")
        folder = _find_folder(data_dir)
        self.width = width
        self.train_images, self.train_labels = _read_batches(
            folder, TRAIN_FILES, limit_train, "limit_train"
        )
        self.val_images, self.val_labels = _read_batches(folder, (TEST_FILE,), limit_val, "limit_val")
        self._mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(STD).view(1, 3, 1, 1)

    @property
    def constant_loss(self) -> float:  # type: ignore[override]
        """The evaluation loss of predicting the training labels' frequencies."""
        return constant_prediction_loss(self.train_labels, self.val_labels, 10)

    def model(self, seed: int) -> ResNet18:
        """A fresh ResNet-18 of width ``width``; its weights depend only on ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ResNet18(num_classes=10, width=self.width)

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless ``(images, labels)``: augmented, normalised float images ``(B, 3, 32, 32)``.

        Images are taken in the order of successive random permutations of the training set (an
        epoch ends in the middle of a batch when ``batch_size`` does not divide its size).
        """
        generator = torch.Generator().manual_seed(seed)
        count = len(self.train_labels)
        order = torch.empty(0, dtype=torch.long)
        while True:
            while len(order) < batch_size:
                order = torch.cat([order, torch.randperm(count, generator=generator)])
            index, order = order[:batch_size], order[batch_size:]
            images = augment(self.train_images[index], generator)
            yield self.normalise(images), self.train_labels[index]

    def loss(
        self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy of the batch and its accuracy."""
        device = next(model.parameters()).device
        images, labels = (t.to(device) for t in batch)
        logits = model(images)
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return F.cross_entropy(logits, labels), accuracy

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Mean loss and accuracy on the (limited) test images, without augmentation."""
        count = len(self.val_labels)
        total_loss, total_accuracy = 0.0, 0.0
        for start in range(0, count, EVAL_CHUNK):
            images = self.normalise(self.val_images[start:start + EVAL_CHUNK])
            labels = self.val_labels[start:start + EVAL_CHUNK]
            loss, accuracy = self.loss(model, (images, labels))
            total_loss += loss.item() * len(labels)
            total_accuracy += accuracy.item() * len(labels)
        return {"val_loss": total_loss / count, "val_accuracy": total_accuracy / count}

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images ``(B, 3, 32, 32)`` -> float, each channel minus its mean over its std."""
        return (images.float() / 255.0 - self._mean) / self._std


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel zero padding, then random horizontal flip, per image.

    ``images`` is ``(B, C, H, W)`` of any dtype; the result has the same shape and dtype. The
    crop offsets and the flips are drawn from ``generator`` (in that order).
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (PADDING, PADDING, PADDING, PADDING))
    top = torch.randint(0, 2 * PADDING + 1, (batch,), generator=generator)
    left = torch.randint(0, 2 * PADDING + 1, (batch,), generator=generator)
    rows = (top[:, None] + torch.arange(height))[:, None, :, None]  # (B, 1, H, 1)
    cols = (left[:, None] + torch.arange(width))[:, None, None, :]  # (B, 1, 1, W)
    images_index = torch.arange(batch)[:, None, None, None]
    channels_index = torch.arange(channels)[None, :, None, None]
    cropped = padded[images_index, channels_index, rows, cols]  # (B, C, H, W)
    flip = torch.rand(batch, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


def _find_folder(data_dir: str | Path | None) -> Path:
    """The ``cifar-10-batches-py`` folder in (or at) ``data_dir``; ValueError if incomplete."""
    if data_dir is None:
        raise ValueError(missing_data_message(None))
    root = Path(data_dir).expanduser()
    folder = root / FOLDER if (root / FOLDER).is_dir() else root
    if not all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
        raise ValueError(missing_data_message(data_dir))
    return folder


def _read_batches(
    folder: Path, names: tuple[str, ...], limit: int | None, option: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of the batch files ``names``.

    Reads files only until ``limit`` images are in hand, and keeps the first ``limit``.
    """
    images, labels = [], []
    for name in names:
        if limit is not None and sum(len(x) for x in labels) >= limit:
            break
        entry = _load_pickle(folder / name)
        try:
            data, batch_labels = np.asarray(entry[b"data"], dtype=np.uint8), list(entry[b"labels"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{folder / name} is not a CIFAR-10 python batch file: {err!r}") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(batch_labels):
            raise ValueError(
                f"{folder / name} has data of shape {data.shape} and {len(batch_labels)} labels; "
                "expected (N, 3072) uint8 and N labels"
            )
        images.append(data)
        labels.append(batch_labels)
    all_images = np.concatenate(images).reshape(-1, 3, 32, 32)
    all_labels = np.concatenate([np.asarray(x, dtype=np.int64) for x in labels])
    if limit is not None:
        if limit > len(all_labels):
            raise ValueError(
                f"{option}={limit} is more than the {len(all_labels)} images in {folder}; "
                f"expected at most {len(all_labels)}"
            )
        all_images, all_labels = all_images[:limit], all_labels[:limit]
    if all_labels.min() < 0 or all_labels.max() > 9:
        raise ValueError(
            f"labels in {folder} run from {all_labels.min()} to {all_labels.max()}; expected 0..9"
        )
    return torch.from_numpy(np.ascontiguousarray(all_images)), torch.from_numpy(all_labels)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batch files, refusing every global except what a NumPy array needs.

    Plain ``pickle.load`` runs whatever code a file names; this loader only rebuilds arrays,
    so a wrong or tampered file fails with an error instead.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR-10 batch file"
            )
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict[bytes, Any]:
    """One CIFAR batch file (a Python 2 pickle: keys come back as bytes)."""
    try:
        entry = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a CIFAR-10 python batch file: {err}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{path} holds a {type(entry).__name__}; expected a dict (CIFAR-10 batch file)")
    return entry
