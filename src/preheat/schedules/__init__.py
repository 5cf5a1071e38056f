"""Pure learning-rate schedules: step (completed updates) -> multiplier of the peak LR.

Imports NumPy only. Each family's formula is written once, against an array namespace, so
``schedule(t)`` (NumPy), optax (``jax.numpy``) and Keras (``keras.ops``) give the same numbers.
See ``docs/schedules.md`` for every formula and a figure of each family.

The map: :mod:`~.base` (the ``Schedule`` contract: evaluation, the hold after ``length``, the
dict and text forms, the fingerprint, ``>>`` and ``*``), :mod:`~.warmups` and :mod:`~.decays`
(one class per family), :mod:`~.compose` (``join``, ``Product``), :mod:`~.presets`
(``warmup_cosine``, ``wsd``, Hugging Face names), :mod:`~.units` (durations written as
``"5%"``, ``"2ep"``, ``"500ksp"``, ``"2Btok"``, resolved to updates), :mod:`~.text` (the safe
parser) and :mod:`~.validate` (every argument check, by field name).
"""

from preheat.schedules.base import Schedule, from_dict
from preheat.schedules.compose import Join, Product, join
from preheat.schedules.decays import (
    Constant,
    CosineDecay,
    CosineRestarts,
    ExponentialDecay,
    InverseSqrt,
    LinearDecay,
    OneMinusSqrtDecay,
    PolynomialDecay,
    StepDecay,
    constant,
    cosine_decay,
    cosine_restarts,
    exponential_decay,
    inverse_sqrt,
    linear_decay,
    one_minus_sqrt_decay,
    polynomial_decay,
    step_decay,
)
from preheat.schedules.presets import HF_NAMES, from_hf_name, warmup_cosine, warmup_linear, wsd
from preheat.schedules.text import ParseError, parse
from preheat.schedules.units import Unresolved
from preheat.schedules.warmups import (
    CosineWarmup,
    ExponentialWarmup,
    LinearWarmup,
    PolynomialWarmup,
    RAdamWarmup,
    UntunedLinearWarmup,
    cosine_warmup,
    exponential_warmup,
    linear_warmup,
    polynomial_warmup,
    radam_warmup,
    untuned_linear_warmup,
)

#: The functions a schedule expression (``parse``) may call.
EXPRESSION_NAMES = (
    "linear_warmup",
    "cosine_warmup",
    "polynomial_warmup",
    "exponential_warmup",
    "untuned_linear_warmup",
    "radam_warmup",
    "constant",
    "linear_decay",
    "cosine_decay",
    "cosine_restarts",
    "polynomial_decay",
    "exponential_decay",
    "step_decay",
    "inverse_sqrt",
    "one_minus_sqrt_decay",
    "join",
    "warmup_cosine",
    "warmup_linear",
    "wsd",
    "from_hf_name",
)

__all__ = [
    *EXPRESSION_NAMES,
    "Schedule",
    "Join",
    "Product",
    "Unresolved",
    "from_dict",
    "parse",
    "ParseError",
    "HF_NAMES",
    "Constant",
    "CosineDecay",
    "CosineRestarts",
    "ExponentialDecay",
    "InverseSqrt",
    "LinearDecay",
    "OneMinusSqrtDecay",
    "PolynomialDecay",
    "StepDecay",
    "CosineWarmup",
    "ExponentialWarmup",
    "LinearWarmup",
    "PolynomialWarmup",
    "RAdamWarmup",
    "UntunedLinearWarmup",
]
