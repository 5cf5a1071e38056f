"""A tiny fake CIFAR-10 in the exact on-disk format of the "CIFAR-10 python version" archive.

Imported by the tests as ``from cifar_files import write_fake_cifar`` (pytest puts this folder,
which has no ``__init__.py``, on ``sys.path``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_fake_cifar(directory: str | Path, n_per_batch: int = 20, seed: int = 0) -> Path:
    """Write ``directory/cifar-10-batches-py`` with five training batches and a test batch.

    Each batch file is a pickled dict like the real ones: ``b"data"`` uint8 ``(n_per_batch,
    3072)`` of random pixels, ``b"labels"`` a list of ints cycling through 0..9, plus
    ``b"batch_label"`` and ``b"filenames"``. Returns the ``cifar-10-batches-py`` folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names):
        entry = {
            b"batch_label": f"fake {name}".encode(),
            b"labels": [(number + i) % 10 for i in range(n_per_batch)],
            b"data": rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"fake_{name}_{i}.png".encode() for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as file:
            pickle.dump(entry, file)
    meta = {
        b"label_names": [n.encode() for n in LABEL_NAMES],
        b"num_cases_per_batch": n_per_batch,
        b"num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump(meta, file)
    return folder
