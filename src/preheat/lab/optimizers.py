"""The optimizer registry: every optimizer a lab run may name, and what the loop knows of it.

One entry per name; nothing else in preheat lists optimizers. An entry says:

- ``family``: ``sgd`` (SGD-like: plain or heavy-ball steps) or ``adam`` (Adam-like: a
  per-coordinate second-moment scaling, even if only later in the run);
- ``preconditioned``: whether every update is Adam's ``theta -= eta P^{-1} m``, so the
  preconditioned sharpness (:func:`preheat.probes.adam_preconditioner`) is the curvature that
  matters and the catapult search takes Adam's first step. RAdam is Adam-like but not
  preconditioned: its first updates are un-adapted momentum steps (its first is ``-eta g``);
  schedule-free AdamW is not either (it steps an average of iterates), nor are Prodigy and
  D-Adaptation (their step is ``lr`` times a distance estimate ``d`` they learn) or Muon;
- ``stability``: the update rule whose edge of stability applies (``sgd``, ``momentum`` or
  ``adam``, see :func:`preheat.adaptive.sharpness.stability_threshold`), or ``None`` where no
  threshold is known (RAdam, schedule-free, Muon and the parameter-free optimizers);
- ``make``: the factory, from the run's config, its parameters and (where known) its model, at
  ``config.peak_lr`` (the schedule's 1). torch and the peers' packages are imported only when an
  optimizer is built.

The optimizers from other packages (the ``peers`` extra, ``pip install 'preheat[peers]'``):

- ``prodigy``: ``prodigyopt.Prodigy`` with ``safeguard_warmup=True`` (its README asks for it
  under a warmup) and ``betas``, ``eps``, ``weight_decay`` (decoupled, its default);
  ``dadapt_adam``: ``dadaptation.DAdaptAdam`` with ``betas``, ``eps``, ``weight_decay``. Both
  learn their step size; ``peak_lr`` is only its multiplier, which their authors leave at 1.0
  (so ``peak_lr = 1.0`` is the run they intend, and the schedule scales it). Adam-like, not
  preconditioned, no known threshold.
- ``dog``: ``dog.DoG`` (the ``dog-optimizer`` package; global DoG, the paper's main method,
  rather than its layer-wise variant LDoG, between which the README does not choose) with its
  default ``reps_rel = 1e-6``, which the README recommends as working "most of the time" (it
  suggests 1e-4 when the step size does not grow for hundreds of steps, as with batch norm),
  and ``weight_decay`` (L2); ``peak_lr`` is again a multiplier of the step it learns, 1.0 as
  intended. SGD-like, no threshold. The iterate averaging the README asks for is not applied:
  the lab evaluates the last iterate, as for every other optimizer.
- ``muon``: ``torch.optim.Muon`` on the hidden weight matrices and ``torch.optim.AdamW``
  (``betas``, ``eps``, ``weight_decay``) on the rest, one optimizer (:func:`muon_parts`), see
  :func:`hidden_matrices` for which parameters are Muon's. Both parts run at the scheduled LR:
  Muon with ``adjust_lr_fn="match_rms_adamw"`` (Moonshot's ``0.2 * sqrt(max(A, B))`` scaling
  of an ``A x B`` matrix's step) so its update has AdamW's RMS and one ``peak_lr`` (and one
  ``weight_decay``), tuned as for AdamW, suits both parts; torch's default, Keller Jordan's
  ``"original"``, would want a peak about 0.2 sqrt(width) times larger for the matrices than
  for the AdamW part. Muon's own momentum (0.95, Nesterov) and Newton-Schulz settings are kept.
  Family ``adam``: half of it is AdamW and its matrix steps are put on AdamW's scale, so it
  runs at Adam's LRs; but it is not preconditioned (Muon orthogonalises its momentum, it does
  not divide by a second moment) and no threshold is known.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from preheat.adaptive.sharpness import stability_rule, stability_threshold

if TYPE_CHECKING:
    import torch

    from preheat.lab.config import RunConfig

Factory = Callable[["RunConfig", list[Any], "torch.nn.Module | None"], "torch.optim.Optimizer"]


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer of the registry (see the module docstring for each field)."""

    family: Literal["sgd", "adam"]
    preconditioned: bool
    stability: Literal["sgd", "momentum", "adam"] | None
    make: Factory

    def beta(self, config: RunConfig) -> float:
        """The momentum the stability threshold uses: ``momentum`` for heavy ball, else ``beta1``."""
        return config.momentum if self.stability == "momentum" else config.betas[0]

    def threshold(self, config: RunConfig, lr: float) -> float:
        """The stability threshold at LR ``lr`` (NaN where none is known; ``inf`` at ``lr = 0``)."""
        return math.nan if self.stability is None else stability_threshold(self.stability, lr, self.beta(config))

    def threshold_rule(self, config: RunConfig) -> str | None:
        """The threshold's formula as text, or ``None`` where none is known."""
        return None if self.stability is None else stability_rule(self.stability, self.beta(config))


def _sgd(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(params, lr=config.peak_lr, weight_decay=config.weight_decay)


def _momentum(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(params, lr=config.peak_lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _adam_like(name: str, **fixed: Any) -> Factory:
    """A factory for an optimizer with Adam's arguments (``lr``, ``betas``, ``eps``, ``weight_decay``)."""

    def make(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
        import torch

        from preheat.optim import GIAdam, GIAdamW

        classes = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "RAdam": torch.optim.RAdam,
                   "GIAdam": GIAdam, "GIAdamW": GIAdamW}
        return classes[name](params, lr=config.peak_lr, betas=config.betas, eps=config.eps,
                             weight_decay=config.weight_decay, **fixed)

    return make


def _schedulefree_adamw(config: RunConfig, params: list[Any],
                        model: torch.nn.Module | None) -> torch.optim.Optimizer:
    from preheat.lab.peers import peer_module

    return peer_module("schedulefree").AdamWScheduleFree(
        params, lr=config.peak_lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay,
        warmup_steps=config.warmup or 0)


def _prodigy(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
    from preheat.lab.peers import peer_module

    return peer_module("prodigyopt").Prodigy(params, lr=config.peak_lr, betas=config.betas, eps=config.eps,
                                             weight_decay=config.weight_decay, safeguard_warmup=True)


def _dadapt_adam(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
    from preheat.lab.peers import peer_module

    return peer_module("dadaptation").DAdaptAdam(params, lr=config.peak_lr, betas=config.betas, eps=config.eps,
                                                 weight_decay=config.weight_decay)


def _dog(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
    from preheat.lab.peers import peer_module

    return peer_module("dog").DoG(params, lr=config.peak_lr, weight_decay=config.weight_decay)


def hidden_matrices(params: list[Any], model: torch.nn.Module | None = None) -> list[Any]:
    """The parameters of ``params`` that ``muon`` gives to Muon (the rest go to AdamW).

    The rule: every 2-D parameter, except the weights of ``torch.nn.Embedding`` modules and the
    readout, the 2-D parameters of the last module of ``model.modules()`` that holds any (a
    head tied to an embedding is excluded both ways). It needs no knowledge of a model beyond
    registering its output layer last, as nanoGPT, torchvision's ResNets and the lab's models
    do. Biases, norm gains and convolution kernels (4-D, which torch's Muon refuses) go to
    AdamW. A model's first linear layer on dense inputs is a hidden matrix here: only lookup
    tables (embeddings) are held out at the input, as Muon's authors do. Without a ``model``
    every 2-D parameter is Muon's (torch's docstring example).
    """
    import torch

    matrices = [p for p in params if p.ndim == 2]
    if model is None:
        return matrices
    excluded: set[int] = set()
    readout: list[Any] = []
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if p.ndim == 2]
        if isinstance(module, torch.nn.Embedding):
            excluded.update(id(p) for p in own)
        if own:
            readout = own
    excluded.update(id(p) for p in readout)
    return [p for p in matrices if id(p) not in excluded]


def _muon(config: RunConfig, params: list[Any], model: torch.nn.Module | None) -> torch.optim.Optimizer:
    import torch

    matrices = hidden_matrices(params, model)
    chosen = {id(p) for p in matrices}
    rest = [p for p in params if id(p) not in chosen]
    parts = []
    if matrices:
        parts.append(torch.optim.Muon(matrices, lr=config.peak_lr, weight_decay=config.weight_decay,
                                      adjust_lr_fn="match_rms_adamw"))
    if rest:
        parts.append(torch.optim.AdamW(rest, lr=config.peak_lr, betas=config.betas, eps=config.eps,
                                       weight_decay=config.weight_decay))
    return muon_parts()(parts)


@functools.cache
def muon_parts() -> type[torch.optim.Optimizer]:
    """The class of ``muon``'s optimizer, ``Parts(optimizers)``: several optimizers over disjoint
    parameters as one ``torch.optim.Optimizer`` (built here on first use, so that naming
    optimizers does not import torch).

    Its ``param_groups`` are the parts' own group dicts, in order (Muon's first), and its
    ``state`` is theirs too, so a scheduler setting ``group["lr"]`` sets each part's LR, update
    0 included, and ``state_dict``/``load_state_dict`` save and restore every part whole (after
    a load the parts are linked to the loaded groups and state again). ``step`` steps every
    part; a closure is evaluated once, before.
    """
    import torch

    class Parts(torch.optim.Optimizer):
        def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
            if not optimizers:
                raise ValueError("optimizers=[] is invalid; expected at least one optimizer")
            self.parts = list(optimizers)
            super().__init__([group for part in self.parts for group in part.param_groups], defaults={})
            self._link()
            self.register_load_state_dict_post_hook(lambda optimizer: optimizer._link())

        def _link(self) -> None:
            start = 0
            for part in self.parts:
                count = len(part.param_groups)
                part.param_groups = self.param_groups[start:start + count]
                part.state = self.state
                start += count

        def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for part in self.parts:
                part.step()
            return loss

    return Parts


#: Every optimizer a run may name. GI-Adam uses ``init_scale=1``, ``bias_correction2=True``;
#: ``radamw`` is RAdam with AdamW's decoupled weight decay.
OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry("sgd", False, "sgd", _sgd),
    "momentum": OptimizerEntry("sgd", False, "momentum", _momentum),
    "adam": OptimizerEntry("adam", True, "adam", _adam_like("Adam")),
    "adamw": OptimizerEntry("adam", True, "adam", _adam_like("AdamW")),
    "giadam": OptimizerEntry("adam", True, "adam", _adam_like("GIAdam")),
    "giadamw": OptimizerEntry("adam", True, "adam", _adam_like("GIAdamW")),
    "radam": OptimizerEntry("adam", False, None, _adam_like("RAdam")),
    "radamw": OptimizerEntry("adam", False, None, _adam_like("RAdam", decoupled_weight_decay=True)),
    "schedulefree_adamw": OptimizerEntry("adam", False, None, _schedulefree_adamw),
    "muon": OptimizerEntry("adam", False, None, _muon),
    "prodigy": OptimizerEntry("adam", False, None, _prodigy),
    "dadapt_adam": OptimizerEntry("adam", False, None, _dadapt_adam),
    "dog": OptimizerEntry("sgd", False, None, _dog),
}

OptimizerName = Literal[tuple(OPTIMIZERS)]  # type: ignore[valid-type]


def build_optimizer(config: RunConfig, params: list[Any],
                    model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, over ``params`` (of ``model``, where given: only
    ``muon`` reads it, see :func:`hidden_matrices`), at ``config.peak_lr``: the LR of update 0
    is whatever the schedule then sets."""
    return OPTIMIZERS[config.optimizer].make(config, params, model)
