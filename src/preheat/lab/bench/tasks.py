"""The benchmark's tasks: where warmup changes the outcome, each with its peak-LR ladder.

Every task is a lab run template (task, model options, optimizer, batch size, betas) with a run
length, a ladder of peak LRs in doublings from a safe value to past no warmup's divergence, a
seed count, and whether it is scored by the final validation loss or by the updates it takes to
reach a loss (the river valley, whose losses fall to 1e-12: a ratio of such losses says nothing a
user needs). Each task belongs to one split:

- **dev**: a method may be designed and tuned on it;
- **test**: only reported; never used to choose a method's defaults;
- **holdout**: fresh test tasks for a method revised after its test results were seen (the
  research discipline: say so, and judge the revision on tasks nobody tuned on). Added when
  ``auto_warmup``'s test results were already known, calibrated with linear warmups only, and run
  by no adaptive method before a revision is frozen. The full tier leaves them out (its 2 hours
  are spent); the ``holdout`` tier runs them, every method;
- **reserve**: the same, for the next revision: added once ``auto_warmup``'s revision had been
  judged on the holdout tasks, calibrated with linear warmups only, and run by no adaptive
  method until its second revision was frozen; then every method ran on them once (the
  ``reserve`` tier), and they are seen too;
- **fresh**: the same, for the third revision: added once the reserve tasks had judged the
  second, calibrated with linear warmups only, and run by no adaptive method until the third
  revision was frozen on the sixteen seen tasks; then every method ran on them once (the
  ``fresh`` tier), and they are seen too;
- **novel**: the same again, for what comes after the third revision: added once the fresh
  tasks had judged it, calibrated with linear warmups only, and run by no adaptive method until
  the next choice of default was frozen on the nineteen seen tasks (the ``novel`` tier); the
  third revision stayed, and they judged it a second time;
- **blind**: the same again, for a fourth revision: added once the novel tasks had judged the
  third, calibrated with linear warmups only (pilots and the linear grid); no fourth revision
  was ready, so every method ran on them once to judge the third a third time (the ``blind``
  tier), and they are seen too;
- **sealed**: the same again, for a fourth revision: added once the blind tasks had judged the
  third, calibrated with linear warmups only (pilots and the linear grid), and run by no
  adaptive method until the fourth revision was frozen on the twenty-five seen tasks; then
  every method ran on them once to judge it (the ``sealed`` tier), and they are seen too;
- **vault**: the same again, for a fifth revision: added once the sealed tasks had judged the
  fourth, calibrated with linear warmups only (pilots and the linear grid), and run by no
  adaptive method until the fifth revision was frozen on the twenty-eight seen tasks; then
  every method ran on them once to judge it (the ``vault`` tier), and they are seen too;
- **cellar**: the same again: added once the vault tasks had judged the fifth revision,
  calibrated with linear warmups only (pilots and the linear grid); no sixth revision was ready
  (an exponential ramp tried on the seen tasks was not adopted), so every method ran on them
  once to judge the fifth a second time (the ``cellar`` tier), and they are seen too;
- **attic**: the same again, for a sixth revision, which changes only what ``auto_warmup`` does
  with SGD: three SGD tasks, added once the cellar tasks had judged the fifth, calibrated with
  linear warmups only (pilots and the linear grid), and run by no adaptive method until the
  sixth revision was frozen on the thirty-four seen tasks; then every method ran on them once to
  judge it (the ``attic`` tier), and they are seen too;
- **loft**: the same again: added once the attic tasks had judged the sixth revision, one task
  per family (a CNN with AdamW, an MLP with SGD, a post-LN transformer), calibrated with linear
  warmups only (pilots and the linear grid); no seventh revision was ready (a slower second
  approach and a middle tier of the probe were tried on the seen tasks and not adopted), so
  every method ran on them once to judge the sixth a second time (the ``loft`` tier);
- **annex**: the same again: added once the loft tasks had judged the sixth revision, two
  transformers (a Muon GPT at context 32, a narrow AdamW GPT) and a deep muP MLP with SGD,
  calibrated with linear warmups only (pilots and the linear grid); no seventh revision was
  ready (a longer ramp after a gradient spike was tried on the seen tasks and not adopted), so
  every method ran on them once to judge the sixth a third time (the ``annex`` tier);
- **crypt**: the same again, for a revision of what ``auto_warmup`` does with Muon, where the
  annex showed its 40 % ramp costs most: three Muon tasks (a deep pre-LN GPT, a post-LN
  transformer, an MLP with MSE), added once the annex tasks had judged the sixth revision,
  calibrated with linear warmups only (pilots and the linear grid); no seventh revision was
  ready (a short ramp for Muon with the spike rules kept into the watch was tried on the seen
  Muon cells and not adopted), so every method ran on them once to judge the sixth a fourth
  time (the ``crypt`` tier), and they are seen too.

The ladders were calibrated with pilot runs of linear warmups of 0, 5 and 20 % (one seed): the
lowest rung is one where warmup makes no difference, and no warmup diverges or falls clearly
behind at the top rungs. The pilots set two ladders too low: in the first full run no warmup
tied the tuned warmup at the top rung of ``gpt-muon`` (0.128) and ``mlp-long`` (0.064), so each
got one more rung above (a change of the yardstick, not of any method's defaults). The three
transformer tasks were then made cheaper (context 32 and batch 16 -> context 16 and batch 8, 0.56x
the time of an update) so that the full tier fits its 2 hours on 2 cores; at that size their
ladders were set again from the same pilots (every rung 1 seed), before any method was compared,
and gpt-muon lost its top rung (0.256, where every warmup ends above 3.1 nats). ``mlp-long`` ran
3 seeds until its intervals at the top rungs proved too wide to call anything (0.06-2.3x of
the tuned warmup); it has 5, like the other digits tasks. The holdout tasks' ladders came from
the same kind of pilot (linear 0, 5, 20 and 50 %, one seed, a wider ladder): no warmup fails
from 0.064 on ``mlp-deep`` (from 0.032 in the full grid) and from 0.4 on ``cnn-mse-sgd``, and ends
1.05-1.12x the 50 % warmup's loss from 0.004 on ``gpt-wide``. A CNN with SGD and cross-entropy was
tried first and dropped: in its full grid, final losses at one peak jumped 0.12-0.68 between
neighbouring warmup lengths, and no warmup only tied the tuned warmup at its aggressive peak
(2.37x [0.96, 5.85]). The reserve tasks' ladders came from the same pilots (0, 5, 20 and 50 %,
one seed, 5-7 rungs): on ``gpt-deep`` no warmup ends 1.06-1.22x the 50 % warmup's loss from 0.002; on
``cnn-batch128`` no warmup ends at chance from 0.064 and behind every warmup at 0.032 (1.6-3.1x);
on ``post-ln-small`` no warmup ends stuck from 0.004, and at 0.008 every length but 50 % does.
Two were piloted first and dropped: a CNN with Adam's default beta2 of 0.999 (the benchmark's
Adam runs last at least 10 x 2 / (1 - beta2) updates, the untuned warmup's length: 20000 there),
and the digits MLP with SGD on cross-entropy: with 2 hidden layers no warmup tied the tuned
warmup at 0.8 and every length diverged at 1.6 in its full grid; with 4, the 20 % warmup
diverged at 0.4 where no warmup did not. The fresh tasks' ladders came from the same pilots (0,
5, 20 and 50 %, one seed, 6-7 rungs): on ``post-ln-wide`` no warmup ends stuck from 0.004 and at
0.008 every length but 50 % does; on ``mlp-small-batch`` no warmup ends 1.7-1.9x the warmups'
loss at 0.064 and diverges at 0.128 (where every warmup ends above 0.46); on ``mlp-mse-adam`` no
warmup diverges from 0.016, and at 0.004 every length is within 8 % of it. The novel tasks'
ladders came from the same pilots: on ``mlp-muon`` every length diverges from 0.064, and no
warmup ends 3.8x the 20 % warmup's loss at 0.032 (all within noise at 0.002); on ``mlp-wide``
no warmup diverges from 0.032 (ties at 0.016); on ``gpt-batch32`` no warmup ends 1.02x the best
length's loss at 0.002 and 1.09-1.13x from 0.004 (all within 1 % at 0.001). The blind tasks'
ladders came from the same pilots (0, 5, 20 and 50 %, one seed, 6-7 rungs): on
``mlp-deep-sgd`` no warmup ends 1.23x the warmups' loss at 0.08 and diverges from 0.16, and at
0.64 only the 50 % warmup trains (all within 7 % at 0.04); on ``gpt-long`` no warmup ends
1.09-1.10x the best length's loss from 0.004 (within 1 % at 0.002); on ``cnn-small-batch`` no
warmup ends 1.4x the best length's loss at 0.004 and 26x at 0.032, and diverges from 0.064 (at
0.002 every length ends near 1.1, within 8 %). A post-LN transformer with Muon was piloted
first and dropped: no warmup ended best, or within 4 % of the best length, at every rung that
trained (0.004-0.064), and every length ended above 3.2 nats from 0.128. A post-LN transformer
at batch 32 (2 layers x 64) was dropped after its linear grid: in the pilot the 5 % and 20 %
warmups got stuck at 0.008 where no warmup trained, and over 3 seeds no warmup came within 3 %
of the tuned warmup at every rung that trains (a tie at 0.001, 0.004 and 0.008, 1.03x [0.96,
1.11] there; 1.02x [1.00, 1.04] at 0.002; every length fails 2 seeds of 3 at 0.016): at batch
32 this post-LN model hardly needs warmup. The sealed tasks' ladders came from the same pilots
(0, 5, 20 and 50 %, one seed, 6-8 rungs): on ``mlp-mup-sgd`` every length is within 1.2 % up to
0.16, no warmup diverges from 0.32 and at 0.64 only the 50 % warmup trains; on
``post-ln-3x96`` no warmup and 5 % are stuck from 0.002, at 0.004 only 50 % trains, and every
length is stuck from 0.008 (all within 2 % at 0.0005); on ``cnn-mse-adam`` no warmup ends
1.12x the best length's loss at 0.008 and 14x at 0.032, and diverges from 0.064 (at 0.004 no
warmup is best, the others within 6 %); its linear grid, whose best at 0.032 was its top rung,
added 0.064 (the grid's 70 % is best at both). The vault tasks' ladders came from the same
pilots (0, 5, 20 and 50 %, one seed, 4-11 rungs): on ``cnn-sgd`` (cross-entropy) every length
trains slowly up to 0.05 (all near 2.1-2.3 nats after 400 updates), at 0.8 no warmup ends 1.12x
the 5 % warmup's loss and at 1.6 2.1x, while 20 % and 50 % end at chance there, and every
length does from 3.2; on ``mlp-mup-deep`` no warmup diverges from 0.064 (5 % trains, 0.145),
every length ends at chance from 0.128, and below 0.064 the lengths' order changes from rung
to rung (one seed); on ``gpt-ctx32`` no warmup ends 1.11x the best length's loss at 0.008 and
1.17x at 0.016 (all within 2 % at 0.002, within 0.4 % at 0.001), and every length ends above
2.87 nats at 0.032. A digits MLP with AdamW at beta2 0.999 was dropped before its pilot
finished: 400 updates are far under 10 x 2 / (1 - beta2) = 20,000 (the rule every Adam run here
keeps, as for the CNN above), and 20,000-update runs do not fit a tier on 2 cores. The cellar
tasks' ladders came from the same pilots (0, 5, 20 and 50 %, one seed, 6-7 rungs): on
``gpt-dropout`` no warmup ends 1.09x the best length's loss at 0.002 and 0.004 and 1.13x at
0.008 (all within 0.8 % at 0.001), and every length ends above 2.97 nats at 0.032; on
``mlp-narrow-deep`` no warmup ends 1.4x the best length's loss at 0.016, 2.2x at 0.032 and 1.6x
at 0.064 (every length above 0.75 there) and diverges at 0.128, where only the 20 % warmup
trains (one seed; at 0.004 no warmup is best); on ``cnn-sgd-wide`` no warmup ends 1.1-2.5x the best length's loss from 0.05 to 0.2 and
diverges from 0.4, where the warmups train, and every length diverges from 1.6. A muP digits
MLP with SGD on cross-entropy was piloted and dropped: every length was within 1 % up to 0.4,
no warmup was best at 0.8, and at 1.6 only the 20 % warmup trained; a digits MLP with 6
hidden layers of 128 was dropped after its pilot, once found to be the holdout's ``mlp-deep``.
The attic tasks' ladders came from the same pilots (0, 5, 20 and 50 %, one seed, 7 rungs): on
``mlp-sgd-small-batch`` every length is within 0.4 % at 0.01, no warmup diverges from 0.04 and
the 5 % warmup at 0.32; on ``mlp-wide-sgd`` every length is within 1.1 % at 0.005 (the ladder
starts a rung below), no warmup and 5 % diverge from 0.01, 20 % from 0.04, and every length
from 0.08; on ``cnn-sgd-small-batch`` every length is within 0.6 % at 0.025, no warmup ends
1.3-4.1x the best length's loss from 0.1 to 0.4 and diverges at 0.8. The digits CNN with
cross-entropy at batch 128 and SGD was dropped after its linear grid: no warmup ties the tuned
warmup at its aggressive peak, 0.8 (1.07x [0.77, 1.49]), and at 1.6 every length fails on 2
seeds of 5 or more (its pilot: every length within 1.5 % at 0.2, the lengths' order erratic at
0.8). Dropped after their pilots: a digits MLP 64-(128 x 4)-10 with SGD
on cross-entropy (no warmup best up to 0.2 and at 0.8, within 10 % at 0.4), and a digits MLP
with AdamW at beta2 0.99 over 2,000 updates (the lengths' order changed from rung to rung on
one seed). The loft tasks' ladders came from the same pilots (0, 5, 20 and 50 %, one seed, 6-7
rungs): on ``cnn-wide`` no warmup ends 1.14x the best length's loss at 0.002, 1.2x at 0.004,
1.6-1.7x at 0.008-0.016 and 9x at 0.032-0.064, and diverges at 0.128 (where 5 % trains); on
``mlp-narrow-deep-sgd`` every length is within 3 % at 0.04, no warmup diverges from 0.32, and
at 0.64 every length ends above 0.54; on ``post-ln-ctx32`` every length is within 1.2 % at
0.001, no warmup ends 1.15x the 50 % warmup's loss at 0.004, at 0.008 every length but 50 %
ends stuck near 3.4 nats, and at 0.016 above 3.25 (50 %: 2.77). The annex tasks' ladders came
from the same pilots (0, 5, 20 and 50 %, one seed, 6-8 rungs): on ``gpt-muon-ctx32`` no warmup
ends best from 0.008 to 0.032 (the 50 % warmup 2.5-3.9 % behind it), 1.06x the 20 % warmup's
loss at 0.064 and 1.08x the 50 % warmup's at 0.128, and every length ends above 3.04 nats at
0.256; on ``gpt-narrow`` every length is within 0.6 % at 0.001, no warmup ends 1.13x the 50 %
warmup's loss at 0.008, 1.14x at 0.016 and 1.10x at 0.032, and every length ends above 2.97 nats at
0.064; on ``mlp-mup-deep-sgd`` every length is within 1.3 % up to 0.04 (3.6 % at 0.08), no warmup
and 5 % diverge from 0.32, and at 0.64 only the 50 % warmup trains. The crypt tasks' ladders came
from the same pilots (0, 5, 20 and 50 %, one seed, 7 rungs): on ``gpt-muon-deep`` every length
is within 1.8 % at 0.004, no warmup ends best from 0.008 to 0.064 (the 50 % warmup 1.2-3.9 %
behind it), 1.12x the 5 % warmup's loss at 0.128, and every length ends above 3.0 nats at 0.256;
on ``post-ln-muon`` every length is within 0.9 % at 0.004, no warmup ends best from 0.008 to
0.032 (the 50 % warmup 1.1-4.2 % behind it), 1.02x the 20 % warmup's loss at 0.064, and every
length ends above 3.3 nats at 0.128; on ``mlp-muon-mse`` every length is within 2.5 % at 0.002,
no warmup ends best at 0.004 and 0.008 and 1.14x the best length's loss at 0.016 and 0.032, at
0.064 every length but 50 % diverges (50 %: 0.90), and at 0.128 every length.
Sizes: ``tiny`` (tests: a few updates on the smallest model), ``default`` (the CPU tiers),
``large`` (a GPU: wider models, longer runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SIZES = ("tiny", "default", "large")
Split = Literal["dev", "test", "holdout", "reserve", "fresh", "novel", "blind", "sealed", "vault", "cellar",
                "attic", "loft", "annex", "crypt"]
SPLITS: tuple[Split, ...] = ("dev", "test", "holdout", "reserve", "fresh", "novel", "blind", "sealed", "vault",
                             "cellar", "attic", "loft", "annex", "crypt")
#: The splits added after the full tier's dev and test: each has a tier of its own, named after it.
LATER_SPLITS: tuple[Split, ...] = tuple(split for split in SPLITS if split not in ("dev", "test"))


@dataclass(frozen=True)
class BenchTask:
    """One benchmark task.

    ``base``: the run fields every method shares (``task``, ``task_options``, ``optimizer``,
    ``batch_size``, ``betas``, ...); ``steps``: updates per run at the ``default`` size;
    ``peaks``: the peak-LR ladder (increasing, in doublings); ``seeds``: seeds per cell;
    ``target``: for ``score="steps"``, the validation loss whose first crossing (interpolated
    between evaluations) is the run's score; ``sizes``: per size other than ``default``, the
    ``task_options`` and fields it overrides (``steps`` among them).
    """

    name: str
    kind: str
    split: Split
    what: str
    base: dict[str, Any]
    steps: int
    peaks: tuple[float, ...]
    seeds: int = 5
    score: Literal["loss", "steps"] = "loss"
    target: float | None = None
    sizes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """The optimizer family the menu is built for: ``adam``, ``sgd`` or ``muon``."""
        optimizer = self.base["optimizer"]
        return "sgd" if optimizer == "sgd" else "muon" if optimizer == "muon" else "adam"

    def fields(self, size: str) -> dict[str, Any]:
        """The run fields at ``size`` (``steps`` included), the size's overrides merged in.

        Raises:
            ValueError: ``size`` is not one of :data:`SIZES`.
        """
        if size not in SIZES:
            raise ValueError(f"size={size!r} is invalid; expected one of {', '.join(SIZES)}")
        override = dict(self.sizes.get(size, {}))
        options = {**self.base.get("task_options", {}), **override.pop("task_options", {})}
        return {**self.base, "steps": self.steps, **override, "task_options": options}


_ADAMW = {"optimizer": "adamw", "betas": (0.9, 0.95), "batch_size": 32}
_SGD = {"optimizer": "sgd", "momentum": 0.9, "batch_size": 32}
_TINY_DIGITS = {"steps": 12, "task_options": {"width": 16}}
_TINY_GPT = {"steps": 8, "batch_size": 4, "task_options": {"n_layer": 1, "n_embd": 16, "n_head": 2,
                                                           "block_size": 16, "eval_batches": 1,
                                                           "eval_batch_size": 4}}
_GPT = {"size": "tiny", "n_layer": 4, "block_size": 16, "eval_batches": 8}
LARGE_CONTEXT = 128  # the small preset's context (preheat.lab.tasks.shakespeare.SIZES)


def _large_gpt(steps: int = 4000, **options: Any) -> dict[str, Any]:
    """A transformer task's ``large`` size: the ``small`` preset of ``shakespeare-char`` (context
    ``LARGE_CONTEXT`` = 128, the preset's, which the default size's ``block_size`` would otherwise
    override), 6 layers unless ``options`` say otherwise, batch 64, ``steps`` updates."""
    return {"steps": steps, "batch_size": 64,
            "task_options": {"size": "small", "n_layer": 6, "block_size": LARGE_CONTEXT, **options}}


_GPT_RUN = {"task": "shakespeare-char", **_ADAMW, "batch_size": 8, "weight_decay": 0.1}  # the GPT tasks' run
_TINY_POST_LN = {**_TINY_GPT, "task_options": {**_TINY_GPT["task_options"], "norm": "post"}}
_CNN_SIZES = {"tiny": {"steps": 12, "task_options": {"width": 4}},
              "large": {"steps": 3000, "task_options": {"width": 64}}}

TASKS: dict[str, BenchTask] = {task.name: task for task in (
    BenchTask(
        "mlp-ce", "MLP", "dev", "digits MLP 64-256-256-10, standard init, cross-entropy, AdamW",
        {"task": "digits", "task_options": {"width": 256}, **_ADAMW},
        steps=400, peaks=(0.016, 0.032, 0.064, 0.128),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "mlp-mse-sgd", "MLP", "dev",
        "digits MLP 64-256-256-10, standard init, MSE, SGD with momentum (Kalra & Barkeshli's regime)",
        {"task": "digits", "task_options": {"width": 256, "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.02, 0.04, 0.08, 0.16),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "gpt-pre-ln", "GPT (pre-LN)", "dev",
        "Shakespeare characters, pre-LN GPT 4 layers x 64, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": _GPT},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt()},
    ),
    BenchTask(
        "river-valley", "river valley", "dev",
        "river valley (curvature grows with the loss), gradient descent, scored by updates to gap 1e-2",
        {"task": "river-valley", "optimizer": "sgd", "momentum": 0.0, "batch_size": 1},
        steps=500, peaks=(0.05, 0.1, 0.2, 0.4, 0.8), score="steps", target=1e-2,
        sizes={"tiny": {"steps": 12}, "large": {"steps": 2000, "task_options": {"dim": 1000}}},
    ),
    BenchTask(
        "mlp-mup-ce", "MLP", "test", "digits MLP 64-512-512-10 in muP (base width 32), cross-entropy, AdamW",
        {"task": "digits", "task_options": {"width": 512, "parameterization": "mup"}, **_ADAMW},
        steps=400, peaks=(0.016, 0.032, 0.064, 0.128),
        sizes={"tiny": {**_TINY_DIGITS, "task_options": {"width": 64, "parameterization": "mup"}},
               "large": {"steps": 3000, "task_options": {"width": 4096}}},
    ),
    BenchTask(
        "cnn", "CNN", "test", "digits as 8x8 images, 3-conv CNN (16-16-32 channels), AdamW",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16}, **_ADAMW},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "post-ln", "post-LN transformer", "test",
        "Shakespeare characters, post-LN transformer 4 layers x 64, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "norm": "post"}},
        steps=400, peaks=(0.0005, 0.001, 0.002, 0.004), seeds=3,
        sizes={"tiny": _TINY_POST_LN,
               "large": _large_gpt(norm="post")},
    ),
    BenchTask(
        "large-batch", "MLP", "test", "digits MLP 64-128-128-10, batch 1024 (most of the data), AdamW",
        {"task": "digits", "task_options": {"width": 128}, **_ADAMW, "batch_size": 1024},
        steps=400, peaks=(0.016, 0.032, 0.064, 0.128),
        sizes={"tiny": {**_TINY_DIGITS, "batch_size": 256}, "large": {"steps": 2000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "gpt-muon", "GPT (pre-LN)", "test",
        "Shakespeare characters, pre-LN GPT 4 layers x 64, context 16, batch 8, Muon on the hidden matrices",
        {**_GPT_RUN, "task_options": _GPT, "optimizer": "muon"},
        steps=400, peaks=(0.016, 0.032, 0.064, 0.128), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt()},
    ),
    BenchTask(
        "mlp-long", "MLP", "test",
        "digits MLP 64-128-128-10, cross-entropy, AdamW (beta2 0.99), a long run: 2000 updates",
        {"task": "digits", "task_options": {"width": 128}, **_ADAMW, "betas": (0.9, 0.99)},
        steps=2000, peaks=(0.016, 0.032, 0.064, 0.128),
        sizes={"tiny": {**_TINY_DIGITS, "steps": 24}, "large": {"steps": 20000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "mlp-deep", "MLP", "holdout",
        "digits MLP 64-(128 x 6)-10, six hidden layers, standard init, cross-entropy, AdamW",
        {"task": "digits", "task_options": {"width": 128, "depth": 6}, **_ADAMW},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "cnn-mse-sgd", "CNN", "holdout",
        "digits as 8x8 images, 3-conv CNN (16-16-32 channels), MSE, SGD with momentum",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16, "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.1, 0.2, 0.4, 0.8),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "gpt-wide", "GPT (pre-LN)", "holdout",
        "Shakespeare characters, pre-LN GPT 2 layers x 128, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "n_embd": 128, "n_head": 4}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=2, n_embd=512, n_head=8)},
    ),
    BenchTask(
        "gpt-deep", "GPT (pre-LN)", "reserve",
        "Shakespeare characters, pre-LN GPT 6 layers x 64, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 6}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=12)},
    ),
    BenchTask(
        "cnn-batch128", "CNN", "reserve", "digits as 8x8 images, 3-conv CNN (16-16-32 channels), batch 128, AdamW",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16}, **_ADAMW, "batch_size": 128},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "post-ln-small", "post-LN transformer", "reserve",
        "Shakespeare characters, post-LN transformer 2 layers x 64, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "norm": "post"}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008), seeds=3,
        sizes={"tiny": _TINY_POST_LN,
               "large": _large_gpt(n_layer=2, norm="post")},
    ),
    BenchTask(
        "post-ln-wide", "post-LN transformer", "fresh",
        "Shakespeare characters, post-LN transformer 2 layers x 128, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "n_embd": 128, "n_head": 4, "norm": "post"}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008), seeds=3,
        sizes={"tiny": _TINY_POST_LN,
               "large": _large_gpt(n_layer=2, n_embd=512, n_head=8, norm="post")},
    ),
    BenchTask(
        "mlp-small-batch", "MLP", "fresh", "digits MLP 64-128-128-10, batch 8 (noisy gradients), AdamW",
        {"task": "digits", "task_options": {"width": 128}, **_ADAMW, "batch_size": 8},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "mlp-mse-adam", "MLP", "fresh", "digits MLP 64-256-256-10, standard init, MSE, AdamW",
        {"task": "digits", "task_options": {"width": 256, "loss": "mse"}, **_ADAMW},
        steps=400, peaks=(0.004, 0.008, 0.016, 0.032),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "mlp-muon", "MLP", "novel", "digits MLP 64-(128 x 4)-10, cross-entropy, Muon on the hidden matrices",
        {"task": "digits", "task_options": {"width": 128, "depth": 4}, **_ADAMW, "optimizer": "muon"},
        steps=400, peaks=(0.004, 0.008, 0.016, 0.032),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "mlp-wide", "MLP", "novel", "digits MLP 64-1024-1024-10, standard init, cross-entropy, AdamW",
        {"task": "digits", "task_options": {"width": 1024}, **_ADAMW},
        steps=400, peaks=(0.004, 0.008, 0.016, 0.032),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 4096}}},
    ),
    BenchTask(
        "gpt-batch32", "GPT (pre-LN)", "novel",
        "Shakespeare characters, pre-LN GPT 2 layers x 64, context 16, batch 32, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2}, "batch_size": 32},
        steps=400, peaks=(0.002, 0.004, 0.008, 0.016), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=2)},
    ),
    BenchTask(
        "mlp-deep-sgd", "MLP", "blind",
        "digits MLP 64-(128 x 4)-10, standard init, MSE, SGD with momentum",
        {"task": "digits", "task_options": {"width": 128, "depth": 4, "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.04, 0.08, 0.16, 0.32, 0.64),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "gpt-long", "GPT (pre-LN)", "blind",
        "Shakespeare characters, pre-LN GPT 2 layers x 64, context 16, batch 8, AdamW (beta2 0.95), a longer run",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2}},
        steps=1200, peaks=(0.002, 0.004, 0.008, 0.016), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(12000, n_layer=2)},
    ),
    BenchTask(
        "cnn-small-batch", "CNN", "blind", "digits as 8x8 images, 3-conv CNN (16-16-32 channels), batch 8, AdamW",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16}, **_ADAMW, "batch_size": 8},
        steps=400, peaks=(0.002, 0.004, 0.008, 0.016, 0.032),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "mlp-mup-sgd", "MLP", "sealed", "digits MLP 64-512-512-10 in muP (base width 32), MSE, SGD with momentum",
        {"task": "digits", "task_options": {"width": 512, "parameterization": "mup", "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.04, 0.08, 0.16, 0.32, 0.64),
        sizes={"tiny": {**_TINY_DIGITS, "task_options": {"width": 64, "parameterization": "mup", "loss": "mse"}},
               "large": {"steps": 3000, "task_options": {"width": 4096}}},
    ),
    BenchTask(
        "post-ln-3x96", "post-LN transformer", "sealed",
        "Shakespeare characters, post-LN transformer 3 layers x 96, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 3, "n_embd": 96, "n_head": 4, "norm": "post"}},
        steps=400, peaks=(0.0005, 0.001, 0.002, 0.004), seeds=3,
        sizes={"tiny": _TINY_POST_LN,
               "large": _large_gpt(n_layer=3, n_embd=384, n_head=6, norm="post")},
    ),
    BenchTask(
        "cnn-mse-adam", "CNN", "sealed", "digits as 8x8 images, 3-conv CNN (16-16-32 channels), MSE, AdamW",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16, "loss": "mse"}, **_ADAMW},
        steps=400, peaks=(0.004, 0.008, 0.016, 0.032, 0.064),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "cnn-sgd", "CNN", "vault", "digits as 8x8 images, 3-conv CNN (16-16-32 channels), cross-entropy, SGD with momentum",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16}, **_SGD},
        steps=400, peaks=(0.1, 0.2, 0.4, 0.8, 1.6),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "mlp-mup-deep", "MLP", "vault", "digits MLP 64-(256 x 4)-10 in muP (base width 32), cross-entropy, AdamW",
        {"task": "digits", "task_options": {"width": 256, "depth": 4, "parameterization": "mup"}, **_ADAMW},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064),
        sizes={"tiny": {**_TINY_DIGITS, "task_options": {"width": 64, "depth": 4, "parameterization": "mup"}},
               "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "gpt-ctx32", "GPT (pre-LN)", "vault",
        "Shakespeare characters, pre-LN GPT 3 layers x 64, context 32, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 3, "block_size": 32}},
        steps=400, peaks=(0.002, 0.004, 0.008, 0.016), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=3, block_size=64)},
    ),
    BenchTask(
        "gpt-dropout", "GPT (pre-LN)", "cellar",
        "Shakespeare characters, pre-LN GPT 2 layers x 64, dropout 0.1, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "dropout": 0.1}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008, 0.016), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=2, dropout=0.1)},
    ),
    BenchTask(
        "mlp-narrow-deep", "MLP", "cellar", "digits MLP 64-(64 x 8)-10, standard init, cross-entropy, AdamW",
        {"task": "digits", "task_options": {"width": 64, "depth": 8}, **_ADAMW},
        steps=400, peaks=(0.004, 0.008, 0.016, 0.032, 0.064),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "cnn-sgd-wide", "CNN", "cellar", "digits as 8x8 images, 3-conv CNN (32-32-64 channels), MSE, SGD with momentum",
        {"task": "digits", "task_options": {"model": "cnn", "width": 32, "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.05, 0.1, 0.2, 0.4, 0.8),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "mlp-sgd-small-batch", "MLP", "attic", "digits MLP 64-256-256-10, standard init, MSE, batch 8, SGD with momentum",
        {"task": "digits", "task_options": {"width": 256, "loss": "mse"}, **_SGD, "batch_size": 8},
        steps=400, peaks=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "mlp-wide-sgd", "MLP", "attic", "digits MLP 64-1024-1024-10, standard init, MSE, SGD with momentum",
        {"task": "digits", "task_options": {"width": 1024, "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.0025, 0.005, 0.01, 0.02, 0.04),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 4096}}},
    ),
    BenchTask(
        "cnn-sgd-small-batch", "CNN", "attic", "digits as 8x8 images, 3-conv CNN (16-16-32 channels), MSE, batch 8, SGD with momentum",
        {"task": "digits", "task_options": {"model": "cnn", "width": 16, "loss": "mse"}, **_SGD, "batch_size": 8},
        steps=400, peaks=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "cnn-wide", "CNN", "loft", "digits as 8x8 images, 3-conv CNN (32-32-64 channels), cross-entropy, AdamW",
        {"task": "digits", "task_options": {"model": "cnn", "width": 32}, **_ADAMW},
        steps=400, peaks=(0.002, 0.004, 0.008, 0.016, 0.032, 0.064),
        sizes=_CNN_SIZES,
    ),
    BenchTask(
        "mlp-narrow-deep-sgd", "MLP", "loft", "digits MLP 64-(64 x 8)-10, standard init, MSE, SGD with momentum",
        {"task": "digits", "task_options": {"width": 64, "depth": 8, "loss": "mse"}, **_SGD},
        steps=400, peaks=(0.04, 0.08, 0.16, 0.32, 0.64),
        sizes={"tiny": _TINY_DIGITS, "large": {"steps": 3000, "task_options": {"width": 1024}}},
    ),
    BenchTask(
        "post-ln-ctx32", "post-LN transformer", "loft",
        "Shakespeare characters, post-LN transformer 2 layers x 64, context 32, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "block_size": 32, "norm": "post"}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008, 0.016), seeds=3,
        sizes={"tiny": _TINY_POST_LN, "large": _large_gpt(n_layer=2, block_size=64, norm="post")},
    ),
    BenchTask(
        "gpt-muon-ctx32", "GPT (pre-LN)", "annex",
        "Shakespeare characters, pre-LN GPT 2 layers x 64, context 32, batch 8, Muon on the hidden matrices",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "block_size": 32}, "optimizer": "muon"},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064, 0.128), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=2, block_size=64)},
    ),
    BenchTask(
        "gpt-narrow", "GPT (pre-LN)", "annex",
        "Shakespeare characters, pre-LN GPT 4 layers x 32, context 16, batch 8, AdamW (beta2 0.95)",
        {**_GPT_RUN, "task_options": {**_GPT, "n_embd": 32, "n_head": 2}},
        steps=400, peaks=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_embd=64, n_head=2)},
    ),
    BenchTask(
        "mlp-mup-deep-sgd", "MLP", "annex",
        "digits MLP 64-(256 x 4)-10 in muP (base width 32), MSE, SGD with momentum",
        {"task": "digits", "task_options": {"width": 256, "depth": 4, "parameterization": "mup", "loss": "mse"},
         **_SGD},
        steps=400, peaks=(0.04, 0.08, 0.16, 0.32, 0.64),
        sizes={"tiny": {**_TINY_DIGITS, "task_options": {"width": 64, "depth": 4, "parameterization": "mup",
                                                         "loss": "mse"}},
               "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
    BenchTask(
        "gpt-muon-deep", "GPT (pre-LN)", "crypt",
        "Shakespeare characters, pre-LN GPT 6 layers x 64, context 16, batch 8, Muon on the hidden matrices",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 6}, "optimizer": "muon"},
        steps=400, peaks=(0.008, 0.016, 0.032, 0.064, 0.128), seeds=3,
        sizes={"tiny": _TINY_GPT, "large": _large_gpt(n_layer=12)},
    ),
    BenchTask(
        "post-ln-muon", "post-LN transformer", "crypt",
        "Shakespeare characters, post-LN transformer 2 layers x 64, context 16, batch 8, Muon on the hidden "
        "matrices",
        {**_GPT_RUN, "task_options": {**_GPT, "n_layer": 2, "norm": "post"}, "optimizer": "muon"},
        steps=400, peaks=(0.004, 0.008, 0.016, 0.032, 0.064, 0.128), seeds=3,
        sizes={"tiny": _TINY_POST_LN, "large": _large_gpt(n_layer=2, norm="post")},
    ),
    BenchTask(
        "mlp-muon-mse", "MLP", "crypt", "digits MLP 64-(256 x 3)-10, MSE, Muon on the hidden matrices",
        {"task": "digits", "task_options": {"width": 256, "depth": 3, "loss": "mse"}, **_ADAMW, "optimizer": "muon"},
        steps=400, peaks=(0.002, 0.004, 0.008, 0.016, 0.032, 0.064),
        sizes={"tiny": {**_TINY_DIGITS, "task_options": {"width": 16, "depth": 3, "loss": "mse"}},
               "large": {"steps": 3000, "task_options": {"width": 2048}}},
    ),
)}
