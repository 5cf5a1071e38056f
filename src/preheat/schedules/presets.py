"""Schedules people ask for by name, built from the families with ``>>``.

Each preset returns an ordinary composed schedule, so ``str()`` shows the phases it is made of.
"""

from __future__ import annotations

from typing import Any

from preheat.schedules.base import Schedule
from preheat.schedules.decays import (
    Constant,
    CosineDecay,
    CosineRestarts,
    ExponentialDecay,
    InverseSqrt,
    LinearDecay,
    OneMinusSqrtDecay,
    PolynomialDecay,
)
from preheat.schedules.units import accepts_units
from preheat.schedules.validate import check_choice, check_real, check_steps
from preheat.schedules.warmups import CosineWarmup, LinearWarmup


def _warmup_and_total(owner: str, warmup: Any, total: Any) -> tuple[int, int]:
    warmup = check_steps(owner, "warmup", warmup)
    total = check_steps(owner, "total", total)
    if warmup > total:
        raise ValueError(
            f"{owner}: warmup={warmup} is longer than total={total}; expected 0 <= warmup <= total"
        )
    return warmup, total


@accepts_units
def warmup_cosine(warmup: int, total: int, start: float = 0.0, end: float = 0.0) -> Schedule:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``end`` at step ``total``.

    ``linear_warmup(warmup, start) >> cosine_decay(total - warmup, end)``: update 0 gets
    ``start``, update ``warmup`` gets 1, update ``total`` and later get ``end``.
    """
    warmup, total = _warmup_and_total("warmup_cosine", warmup, total)
    return LinearWarmup(warmup, start) >> CosineDecay(total - warmup, end)


@accepts_units
def warmup_linear(warmup: int, total: int, start: float = 0.0, end: float = 0.0) -> Schedule:
    """Linear warmup over ``warmup`` steps, then linear decay to ``end`` at step ``total``.

    ``linear_warmup(warmup, start) >> linear_decay(total - warmup, end)``: update 0 gets
    ``start``, update ``warmup`` gets 1, update ``total`` and later get ``end``.
    """
    warmup, total = _warmup_and_total("warmup_linear", warmup, total)
    return LinearWarmup(warmup, start) >> LinearDecay(total - warmup, end)


WSD_SHAPES = ("linear", "cosine", "1-sqrt", "exponential")


@accepts_units
def wsd(
    warmup: int,
    total: int,
    decay_fraction: float = 0.2,
    shape: str = "linear",
    end: float = 0.0,
    start: float = 0.0,
) -> Schedule:
    """Warmup-stable-decay: linear warmup, a constant phase at 1, a decay to ``end`` by ``total``.

    The decay lasts ``D = round(decay_fraction * total)`` steps and the stable phase
    ``total - warmup - D``. ``shape`` picks the decay: ``linear``, ``cosine``, ``1-sqrt``
    (Hägele et al. 2024) or ``exponential`` (``end ** (t / D)``, needs ``end > 0``); with
    ``D = 0`` the LR drops to ``end`` at ``total``. Update 0 gets ``start``; update ``total``
    and later get ``end``.
    """
    owner = "wsd"
    warmup, total = _warmup_and_total(owner, warmup, total)
    fraction = check_real(owner, "decay_fraction", decay_fraction, 0.0, 1.0, low_open=True)
    shape = check_choice(owner, "shape", shape, WSD_SHAPES)
    end = check_real(owner, "end", end, 0.0, 1.0)
    decay = min(round(fraction * total), total)  # float rounding must not pass total (near 2**63)
    stable = total - warmup - decay
    if stable < 0:
        raise ValueError(
            f"{owner}: warmup={warmup} plus the decay of {decay} steps (decay_fraction={fraction}) "
            f"is longer than total={total}; expected warmup + round(decay_fraction * total) <= total"
        )
    if decay == 0:
        tail: Schedule = Constant(0, value=end)
    elif shape == "exponential":
        if end <= 0.0:
            raise ValueError(
                f"{owner}: end={end!r} is invalid for shape='exponential'; expected end in (0, 1]"
            )
        tail = ExponentialDecay(rate=end ** (1.0 / decay), steps=decay)
    else:
        tail = {"linear": LinearDecay, "cosine": CosineDecay, "1-sqrt": OneMinusSqrtDecay}[shape](
            decay, end=end
        )
    return LinearWarmup(warmup, start) >> Constant(stable) >> tail


HF_NAMES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)

_HF_KWARGS: dict[str, tuple[str, ...]] = {
    "linear": (),
    "cosine": ("num_cycles",),
    "cosine_with_restarts": ("num_cycles",),
    "polynomial": ("lr_end", "lr_end_rate", "power", "peak"),
    "constant": (),
    "constant_with_warmup": (),
    "inverse_sqrt": ("timescale",),
    "cosine_with_min_lr": ("num_cycles", "min_lr", "min_lr_rate", "peak"),
    "warmup_stable_decay": (
        "num_decay_steps",
        "num_stable_steps",
        "warmup_type",
        "decay_type",
        "min_lr_ratio",
        "num_cycles",
    ),
}


def _ratio(owner: str, absolute: str, rate: str, kwargs: dict[str, Any], default: float | None) -> float:
    """An end LR as a fraction of the peak: ``rate`` directly, or ``absolute / peak``."""
    if kwargs.get(absolute) is not None and kwargs.get(rate) is not None:
        raise ValueError(f"{owner}: give {absolute} (with peak) or {rate}, not both")
    if kwargs.get(rate) is not None:
        return check_real(owner, rate, kwargs[rate], 0.0, 1.0)
    value = kwargs.get(absolute, default)
    if value is None:
        raise ValueError(f"{owner}: expected {absolute}=... (with peak=...) or {rate}=... (a fraction of the peak)")
    value = check_real(owner, absolute, value, 0.0)
    peak = kwargs.get("peak")
    if peak is None:
        raise ValueError(
            f"{owner}: {absolute}={value!r} is an absolute LR; give peak=... to turn it into a "
            f"fraction of the peak, or give {rate}=... directly"
        )
    peak = check_real(owner, "peak", peak, 0.0, low_open=True)
    return check_real(owner, f"{absolute} / peak", value / peak, 0.0, 1.0, high_open=absolute == "lr_end")


@accepts_units
def from_hf_name(
    name: str,
    num_warmup_steps: int,
    num_training_steps: int | None = None,
    **kwargs: Any,
) -> Schedule:
    """The schedule Hugging Face's ``get_scheduler(name, ...)`` builds, with exactly its numbers.

    Warmup is linear from 0 at update 0 (HF's convention), reaching 1 at ``num_warmup_steps``.
    Keyword arguments follow HF's names. Where HF takes an absolute LR (``lr_end`` of
    ``polynomial``, ``min_lr`` of ``cosine_with_min_lr``) pass it with ``peak=`` (the
    optimizer's LR, as HF reads it) or give the fraction of the peak directly (``lr_end_rate``,
    HF's own ``min_lr_rate``). ``polynomial`` keeps HF's default ``lr_end=1e-7``, so it needs
    ``peak`` or ``lr_end_rate``.

    Values agree with HF at every step up to ``num_training_steps``; after it ``cosine`` and
    ``cosine_with_min_lr`` hold their final value where HF's curve climbs back.
    ``warmup_stable_decay`` supports ``warmup_type`` ``linear`` and ``cosine``.
    """
    check_choice("from_hf_name", "name", name, HF_NAMES)
    owner = f"from_hf_name({name!r})"
    unknown = set(kwargs) - set(_HF_KWARGS[name])
    if unknown:
        raise ValueError(
            f"{owner}: unexpected argument(s) {sorted(unknown)}; expected any of {list(_HF_KWARGS[name])}"
        )
    warmup = check_steps(owner, "num_warmup_steps", num_warmup_steps)
    ramp = LinearWarmup(warmup)
    if name == "constant":
        return Constant()
    if name == "constant_with_warmup":
        return ramp >> Constant()
    if name == "inverse_sqrt":
        timescale = kwargs.get("timescale")
        return ramp >> InverseSqrt(timescale if timescale is not None else warmup or 10_000)
    if name == "warmup_stable_decay":
        return _hf_wsd(owner, warmup, num_training_steps, kwargs)

    if num_training_steps is None:
        raise ValueError(f"{owner}: num_training_steps=None is invalid; expected an integer >= num_warmup_steps")
    total = check_steps(owner, "num_training_steps", num_training_steps)
    _, total = _warmup_and_total(owner, warmup, total)
    decay = total - warmup
    # HF's cosine family divides by max(1, total - warmup): with warmup == total, step `total`
    # still gets 1 there, while HF's linear gets 0.
    cosine_decay_steps = max(1, decay)
    cycles = kwargs.get("num_cycles")
    if name == "linear":
        tail: Schedule = LinearDecay(decay)
    elif name == "cosine":
        tail = CosineDecay(cosine_decay_steps, cycles=0.5 if cycles is None else cycles)
    elif name == "cosine_with_restarts":
        tail = CosineRestarts(cosine_decay_steps, cycles=1 if cycles is None else cycles)
    elif name == "polynomial":
        end = _ratio(owner, "lr_end", "lr_end_rate", kwargs, default=1e-7)
        tail = PolynomialDecay(decay, power=kwargs.get("power", 1.0), end=end)
    else:  # cosine_with_min_lr
        end = _ratio(owner, "min_lr", "min_lr_rate", kwargs, default=None)
        tail = CosineDecay(cosine_decay_steps, end=end, cycles=0.5 if cycles is None else cycles)
    return ramp >> tail


def _hf_wsd(owner: str, warmup: int, total: int | None, kwargs: dict[str, Any]) -> Schedule:
    if "num_decay_steps" not in kwargs:
        raise ValueError(f"{owner}: num_decay_steps is required")
    decay = check_steps(owner, "num_decay_steps", kwargs["num_decay_steps"])
    stable = kwargs.get("num_stable_steps")
    if stable is None:
        if total is None:
            raise ValueError(f"{owner}: give num_training_steps or num_stable_steps")
        stable = check_steps(owner, "num_training_steps", total) - warmup - decay
    stable = check_steps(owner, "num_stable_steps (num_training_steps - warmup - decay)", stable)
    ratio = check_real(owner, "min_lr_ratio", kwargs.get("min_lr_ratio", 0.0), 0.0, 1.0)
    warmup_type = check_choice(owner, "warmup_type", kwargs.get("warmup_type", "linear"), ("linear", "cosine"))
    decay_type = check_choice(owner, "decay_type", kwargs.get("decay_type", "cosine"), ("linear", "cosine", "1-sqrt"))
    ramp = {"linear": LinearWarmup, "cosine": CosineWarmup}[warmup_type](warmup, start=ratio)
    if decay_type == "cosine":
        tail: Schedule = CosineDecay(decay, end=ratio, cycles=kwargs.get("num_cycles", 0.5))
    else:
        tail = {"linear": LinearDecay, "1-sqrt": OneMinusSqrtDecay}[decay_type](decay, end=ratio)
    if tail(decay) != ratio:  # a cosine with num_cycles not a half-integer: HF drops to the end
        tail = tail >> Constant(value=ratio)
    return ramp >> Constant(stable) >> tail
