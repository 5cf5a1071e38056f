"""The text and vision tasks: the small GPT, shakespeare-char, the CIFAR ResNet-18 and cifar10."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_files import write_fake_cifar
from preheat.lab.config import RunConfig
from preheat.lab.models import GPT, GPTConfig, ResNet18
from preheat.lab.run import train
from preheat.lab.tasks import make_task
from preheat.lab.tasks.cifar10 import Cifar10, augment
from preheat.lab.tasks.shakespeare import SIZES, ShakespeareChar, shipped_text

SHARED_TEXT = Path("/work/shared/data/shakespeare/shakespeare.txt")


@pytest.fixture(autouse=True)
def one_thread():
    """These small models run a little slower on one thread when the CPU is idle, but many times
    faster when other processes share it (as when test files run side by side)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shakespeare() -> ShakespeareChar:
    return ShakespeareChar(size="tiny")


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``cifar-10-batches-py`` with 5 x 20 training and 20 test images."""
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(root, n_per_batch=20)
    return root


# --- the GPT -------------------------------------------------------------------------------


@pytest.mark.parametrize("tie_weights", [True, False])
def test_gpt_forward_shapes_and_tying(tie_weights: bool) -> None:
    shape = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(GPTConfig(**shape, tie_weights=tie_weights))
    logits = model(torch.randint(0, 11, (3, 16)))
    assert logits.shape == (3, 16, 11)
    assert (model.head.weight is model.token_embedding.weight) == tie_weights
    untied_extra = 0 if tie_weights else 11 * 32  # the head's own (vocab x n_embd) weight
    assert model.num_parameters() == GPT(GPTConfig(**shape)).num_parameters() + untied_extra
    assert model(torch.randint(0, 11, (2, 5))).shape == (2, 5, 11)  # shorter than block_size is fine
    with pytest.raises(ValueError, match="block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_gpt_is_causal(norm: str) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=12, n_layer=2, n_head=2, n_embd=16, norm=norm)).eval()
    tokens = torch.randint(0, 13, (2, 12))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 13
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7], rtol=0, atol=0)
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_gpt_init_is_gpt2_like() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=8, n_head=4, n_embd=256))
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 8)
    for block in model.blocks:
        assert block.attn.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
        assert block.mlp.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
        assert block.mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert torch.all(block.attn.qkv.bias == 0)


def test_post_ln_gpt_normalises_each_block_output() -> None:
    """Post-LN: ``h = ln_1(x + attn(x))``, ``out = ln_2(h + mlp(h))``, no final LayerNorm; so every
    block's output has per-token mean 0 and std 1 (LayerNorm's affine starts at identity), which
    the pre-LN residual stream does not."""
    shape = dict(vocab_size=13, block_size=12, n_layer=3, n_head=2, n_embd=32)
    torch.manual_seed(0)
    post = GPT(GPTConfig(**shape, norm="post"))
    torch.manual_seed(0)
    pre = GPT(GPTConfig(**shape))
    assert isinstance(post.ln_f, torch.nn.Identity) and isinstance(pre.ln_f, torch.nn.LayerNorm)
    shared = post.state_dict()  # one seed, the same weights: post-LN lacks only ln_f
    assert set(pre.state_dict()) - set(shared) == {"ln_f.weight", "ln_f.bias"}
    assert all(torch.equal(pre.state_dict()[k], v) for k, v in shared.items())

    tokens = torch.randint(0, 13, (2, 12), generator=torch.Generator().manual_seed(1))
    outputs: dict[str, list[torch.Tensor]] = {"pre": [], "post": []}
    for norm, model in (("pre", pre), ("post", post)):
        for block in model.blocks:
            block.register_forward_hook(lambda _m, _i, out, norm=norm: outputs[norm].append(out))
    with torch.no_grad():
        logits_post, logits_pre = post(tokens), pre(tokens)
    assert len(outputs["post"]) == len(outputs["pre"]) == 3
    assert not torch.allclose(logits_post, logits_pre)
    for out in outputs["post"]:
        torch.testing.assert_close(out.mean(dim=-1), torch.zeros(2, 12), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.std(dim=-1, unbiased=False), torch.ones(2, 12), atol=1e-3, rtol=0)
    assert all(out.std(dim=-1).max() < 0.5 for out in outputs["pre"])  # GPT-2 init: a small stream
    # The layer order, written out for the first block; the head reads the last block's output.
    block, x = post.blocks[0], post.token_embedding(tokens) + post.position_embedding(torch.arange(12))
    with torch.no_grad():
        h = block.ln_1(x + block.attn(x))
        torch.testing.assert_close(block(x), block.ln_2(h + block.mlp(h)))
        torch.testing.assert_close(logits_post, post.head(outputs["post"][2]))


def test_gpt_config_validation() -> None:
    with pytest.raises(ValueError, match="n_embd=30 is not divisible by n_head=4"):
        GPTConfig(vocab_size=10, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="n_layer=0"):
        GPTConfig(vocab_size=10, n_layer=0)
    with pytest.raises(ValueError, match="dropout=1.0"):
        GPTConfig(vocab_size=10, dropout=1.0)
    with pytest.raises(ValueError, match="norm='mid' is invalid; expected one of 'pre', 'post'"):
        GPTConfig(vocab_size=10, norm="mid")


# --- shakespeare-char ------------------------------------------------------------------------


def test_shipped_corpus_is_small_and_complete(shakespeare: ShakespeareChar) -> None:
    shipped = Path(__file__).parents[2] / "src" / "preheat" / "data" / "shakespeare.txt.gz"
    if shipped.exists():  # an installed (non-editable) package has no src/ tree
        assert shipped.stat().st_size < 600_000
    text = shipped_text()
    assert len(shakespeare.train_data) + len(shakespeare.val_data) == len(text)
    assert len(shakespeare.train_data) == int(0.9 * len(text))  # first 90% / last 10%
    assert shakespeare.decode(shakespeare.val_data[:50]) == text[int(0.9 * len(text)):][:50]
    assert shakespeare.vocab == sorted(set(text))
    assert shakespeare.chance_accuracy == pytest.approx(1 / len(shakespeare.vocab))
    if not SHARED_TEXT.exists():
        pytest.skip(f"{SHARED_TEXT} is not here to compare the shipped corpus with")
    reference = SHARED_TEXT.read_text(encoding="utf-8")
    assert text == reference
    assert len(shakespeare.vocab) == len(set(reference)) == 78


def test_data_option_reads_any_text_file(tmp_path: Path) -> None:
    text = "To be, or not to be: that is the question.\n" * 20
    path = tmp_path / "hamlet.txt"
    path.write_text(text, encoding="utf-8")
    task = ShakespeareChar(data=str(path), block_size=8)
    assert task.vocab == sorted(set(text))
    assert task.decode(task.train_data) + task.decode(task.val_data) == text
    assert len(task.val_data) == len(text) - int(0.9 * len(text))
    assert task.encode("be").tolist() == [task.vocab.index("b"), task.vocab.index("e")]
    metrics = task.evaluate(task.model(0).eval())
    assert set(metrics) == {"val_loss", "val_accuracy"}


def test_data_option_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(ValueError, match=f"data='{missing}' is not a file"):
        ShakespeareChar(data=missing)
    short = tmp_path / "short.txt"
    short.write_text("abc" * 30)
    with pytest.raises(ValueError, match="too short"):
        ShakespeareChar(data=short)  # its 9-character validation part cannot hold a 64-window
    with pytest.raises(ValueError, match="size='huge' is unknown; expected one of tiny, small, medium"):
        ShakespeareChar(size="huge")
    with pytest.raises(ValueError, match="bad task_options"):
        make_task("shakespeare-char", {"sise": "tiny"})
    with pytest.raises(ValueError, match="norm='Post' is invalid; expected one of 'pre', 'post'"):
        make_task("shakespeare-char", {"norm": "Post"})


def test_sizes_and_overrides(shakespeare: ShakespeareChar) -> None:
    assert set(SIZES) == {"tiny", "small", "medium"}
    assert shakespeare.config.n_layer == 2 and shakespeare.config.block_size == 64
    task = ShakespeareChar(size="small", n_layer=1, block_size=32, dropout=0.1)
    shape = (task.config.n_layer, task.config.block_size, task.config.n_embd)
    assert shape == (1, 32, SIZES["small"]["n_embd"])
    assert task.config.dropout == 0.1
    with pytest.raises(ValueError, match="n_embd=63 is not divisible by n_head=2"):
        ShakespeareChar(n_embd=63)


def test_batches_are_seeded_shifted_windows(shakespeare: ShakespeareChar) -> None:
    first = [next(shakespeare.batches(3, 4)) for _ in range(2)]
    assert torch.equal(first[0][0], first[1][0])
    stream = shakespeare.batches(3, 4)
    x, y = next(stream)
    x2, _ = next(stream)
    assert x.shape == y.shape == (4, 64) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one character
    assert not torch.equal(x, x2)
    assert not torch.equal(x, next(shakespeare.batches(4, 4))[0])
    assert shakespeare.decode(x[0]) in shipped_text()


def test_evaluate_is_fixed(shakespeare: ShakespeareChar) -> None:
    model = shakespeare.model(0).eval()
    with torch.no_grad():
        first, second = shakespeare.evaluate(model), shakespeare.evaluate(model)
    assert first == second
    assert first["val_loss"] == pytest.approx(math.log(len(shakespeare.vocab)), rel=0.05)
    assert 0 <= first["val_accuracy"] <= 1
    state = torch.random.get_rng_state()
    assert torch.equal(shakespeare.model(5).head.weight, shakespeare.model(5).head.weight)
    assert torch.equal(state, torch.random.get_rng_state())  # model(seed) leaves the global RNG alone


def _config(**fields: object) -> RunConfig:
    base = dict(task="shakespeare-char", task_options={"size": "tiny"}, steps=5, batch_size=16,
                peak_lr=3e-3, eval_every=5, seed=1)
    return RunConfig(**{**base, **fields})


def test_shakespeare_runs_are_deterministic(shakespeare: ShakespeareChar) -> None:
    first, second = train(_config()), train(_config(), task=shakespeare)
    assert first.status == second.status == "finished", (first.error, second.error)
    assert first.steps["train_loss"] == second.steps["train_loss"]
    assert first.evals["val_loss"] == second.evals["val_loss"]
    other_seed = train(_config(seed=2), task=shakespeare)
    assert other_seed.steps["train_loss"] != first.steps["train_loss"]


def test_post_ln_shakespeare_trains_and_differs_from_pre_ln(shakespeare: ShakespeareChar) -> None:
    task = ShakespeareChar(size="tiny", norm="post")
    assert task.config.norm == "post" and shakespeare.config.norm == "pre"
    options = {"size": "tiny", "norm": "post"}
    post, pre = train(_config(task_options=options), task=task), train(_config(), task=shakespeare)
    assert post.status == pre.status == "finished", (post.error, pre.error)
    assert all(math.isfinite(v) for v in post.steps["train_loss"] + post.evals["val_loss"])
    assert post.steps["train_loss"] != pre.steps["train_loss"]


def test_tiny_shakespeare_run_learns(shakespeare: ShakespeareChar) -> None:
    config = _config(steps=80, batch_size=32, eval_every=80, schedule="warmup_cosine(10, {steps})")
    result = train(config, task=shakespeare)
    assert result.status == "finished", result.error
    initial, final = result.evals["val_loss"][0], result.evals["val_loss"][-1]
    assert final < initial - 1.0  # ln(78) = 4.36 -> about 2.9 after 80 steps
    assert result.evals["val_accuracy"][-1] > 3 * shakespeare.chance_accuracy


# --- the ResNet and cifar10 -----------------------------------------------------------------


def test_resnet18_shapes_and_size() -> None:
    model = ResNet18(width=8)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    standard = sum(p.numel() for p in ResNet18().parameters())
    assert standard == 11_173_962  # the usual CIFAR ResNet-18
    with pytest.raises(ValueError, match="width=0"):
        ResNet18(width=0)


@pytest.mark.parametrize("inner", [False, True])
def test_fake_cifar_loads(fake_cifar: Path, inner: bool) -> None:
    data_dir = fake_cifar / "cifar-10-batches-py" if inner else fake_cifar
    task = make_task("cifar10", {"data_dir": str(data_dir), "width": 8})
    assert isinstance(task, Cifar10)
    assert task.train_images.shape == (100, 3, 32, 32) and task.train_images.dtype == torch.uint8
    assert task.val_images.shape == (20, 3, 32, 32)
    assert task.train_labels.dtype == torch.long and task.train_labels.tolist()[:3] == [0, 1, 2]
    assert task.chance_accuracy == 0.1
    raw = pickle.loads((fake_cifar / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    assert torch.equal(task.train_images[20].reshape(-1), torch.from_numpy(raw[b"data"][0]))


def test_limits(fake_cifar: Path) -> None:
    task = Cifar10(data_dir=fake_cifar, width=8, limit_train=30, limit_val=7)
    assert len(task.train_labels) == 30 and len(task.val_labels) == 7
    with pytest.raises(ValueError, match="limit_train=500 is more than the 100 images"):
        Cifar10(data_dir=fake_cifar, limit_train=500)
    with pytest.raises(ValueError, match="limit_val=0 is invalid"):
        Cifar10(data_dir=fake_cifar, limit_val=0)


def test_missing_cifar_says_what_to_download(tmp_path: Path) -> None:
    for options in ({"data_dir": str(tmp_path)}, {}):
        with pytest.raises(ValueError) as error:
            make_task("cifar10", options)
        message = str(error.value)
        assert "cifar-10-python.tar.gz" in message and "University of Toronto" in message
        assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message
        assert "cifar-10-batches-py" in message
        assert f"-C {options.get('data_dir', 'DIR')}" in message  # where to extract it
    with pytest.raises(ValueError, match=f"data_dir='{tmp_path}' holds no CIFAR-10"):
        Cifar10(data_dir=tmp_path)


def test_cifar_files_are_unpickled_safely(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path, n_per_batch=2)

    class Evil:
        def __reduce__(self) -> tuple:
            return (eval, ("this should never run",))  # not print: Ray replaces builtins.print

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(ValueError, match="builtins.eval is not allowed"):
        Cifar10(data_dir=tmp_path)


def test_augment_keeps_shapes_is_seeded_and_crops() -> None:
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, augment(images, torch.Generator().manual_seed(1)))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for image, result in zip(padded, out):  # each result is a (flipped) 32x32 crop of the padded image
        crops = [image[:, top:top + 32, left:left + 32] for top in range(9) for left in range(9)]
        assert any(torch.equal(result, crop) or torch.equal(result, crop.flip(2)) for crop in crops)


def test_cifar_batches(fake_cifar: Path) -> None:
    task = Cifar10(data_dir=fake_cifar, width=8)
    images, labels = next(task.batches(0, 100))
    assert images.shape == (100, 3, 32, 32) and images.dtype == torch.float32
    assert sorted(labels.tolist()) == sorted(task.train_labels.tolist())  # one epoch, each image once
    again, again_labels = next(task.batches(0, 100))
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    assert not torch.equal(images, next(task.batches(1, 100))[0])
    stream = task.batches(0, 64)  # batches that straddle epochs
    assert [len(next(stream)[1]) for _ in range(3)] == [64, 64, 64]
    normalised = task.normalise(task.val_images)
    assert normalised.mean().abs() < 0.5  # uniform pixels land near the normalised mean of 0


def test_cifar_training_runs(fake_cifar: Path) -> None:
    config = RunConfig(task="cifar10", task_options={"data_dir": str(fake_cifar), "width": 8},
                       steps=4, batch_size=16, eval_every=2, peak_lr=1e-3)
    result = train(config)
    assert result.status == "finished", result.error
    assert len(result.steps["train_loss"]) == 4
    assert all(np.isfinite(result.steps["train_loss"])) and all(np.isfinite(result.evals["val_loss"]))
    assert result.evals["step"] == [0, 2, 4]
    assert all(0 <= a <= 1 for a in result.evals["val_accuracy"])
    again = train(config)
    assert again.steps["train_loss"] == result.steps["train_loss"]


class _Constant(torch.nn.Module):
    """A model whose logits at every position are ``logits``, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*x.shape, -1)


def test_the_constant_loss_is_what_the_training_character_frequencies_score(shakespeare: ShakespeareChar) -> None:
    counts = torch.bincount(shakespeare.train_data, minlength=len(shakespeare.vocab)).double()
    frequencies = (counts + 1) / (counts.sum() + len(shakespeare.vocab))
    with torch.no_grad():
        scored = shakespeare.evaluate(_Constant(frequencies.log().float()))["val_loss"]
    assert shakespeare.constant_loss == pytest.approx(scored, rel=1e-5)
    assert 3.0 < shakespeare.constant_loss < math.log(len(shakespeare.vocab))  # below guessing uniformly
