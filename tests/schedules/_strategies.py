"""Hypothesis strategies that build valid schedules of every family, and compositions of them."""

from __future__ import annotations

from hypothesis import strategies as st

from preheat import schedules as S

steps = st.integers(0, 60)
maybe_steps = st.none() | steps
fraction = st.floats(0.0, 1.0, allow_nan=False)
beta2 = st.floats(0.01, 0.9999)
radam_beta2 = st.floats(0.67, 0.9999)
power = st.floats(0.1, 5.0)
cycles = st.floats(0.05, 3.0)
tau = st.floats(0.5, 1000.0)
rate = st.floats(0.5, 1.0)
half_life = st.floats(0.5, 100.0)
timescale = st.floats(0.5, 1000.0)
gamma = st.floats(0.01, 1.0)
milestones = st.lists(st.integers(1, 60), min_size=1, max_size=4, unique=True).map(sorted)

warmups = st.one_of(
    st.builds(S.linear_warmup, steps, fraction),
    st.builds(S.cosine_warmup, steps, fraction),
    st.builds(S.polynomial_warmup, steps, power, fraction),
    st.builds(lambda t, n: S.exponential_warmup(tau=t, steps=n), tau, maybe_steps),
    st.builds(lambda b, n: S.exponential_warmup(beta2=b, steps=n), beta2, maybe_steps),
    st.builds(S.untuned_linear_warmup, beta2),
    st.builds(S.radam_warmup, radam_beta2, maybe_steps),
)

#: Decays that never rise (half-wave cosine, restarts with at most one cycle, ...).
monotone_decays = st.one_of(
    st.builds(S.constant, maybe_steps, fraction),
    st.builds(S.linear_decay, steps, fraction),
    st.builds(S.cosine_decay, steps, fraction),
    st.builds(lambda n, c, e: S.cosine_restarts(n, cycles=c, end=e), steps, st.floats(0.05, 1.0), fraction),
    st.builds(S.polynomial_decay, steps, power, fraction),
    st.builds(lambda r, n: S.exponential_decay(rate=r, steps=n), rate, maybe_steps),
    st.builds(lambda h, n: S.exponential_decay(half_life=h, steps=n), half_life, maybe_steps),
    st.builds(lambda e, g: S.step_decay(every=e, gamma=g), st.integers(1, 30), gamma),
    st.builds(lambda m, g: S.step_decay(milestones=m, gamma=g), milestones, gamma),
    st.builds(S.inverse_sqrt, timescale),
    st.builds(S.one_minus_sqrt_decay, steps, fraction),
)

decays = st.one_of(
    monotone_decays,
    st.builds(S.cosine_decay, steps, fraction, cycles),
    st.builds(S.cosine_restarts, steps, cycles, fraction),
)

families = st.one_of(warmups, decays)


def _then(pair):
    first, second = pair
    return first >> second


def _join(data):
    phases, bounds = data
    return S.join(phases, sorted(bounds))


def _compose(children):
    finite = children.filter(lambda s: s.length is not None)
    explicit = st.integers(2, 3).flatmap(
        lambda n: st.tuples(
            st.lists(children, min_size=n, max_size=n),
            st.lists(st.integers(1, 90), min_size=n - 1, max_size=n - 1, unique=True),
        )
    )
    return st.one_of(
        st.tuples(finite, children).map(_then),
        st.tuples(children, children).map(lambda ab: ab[0] * ab[1]),
        explicit.map(_join),
    )


schedules = st.recursive(families, _compose, max_leaves=6)
