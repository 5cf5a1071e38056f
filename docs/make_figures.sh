#!/usr/bin/env bash
# Regenerate every figure in docs/figures with the exact commands shown in docs/schedules.md.
# Needs `preheat` on PATH with matplotlib installed (pip install -e '.[plot]'); run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v preheat >/dev/null || { echo "make_figures.sh: 'preheat' is not on PATH" >&2; exit 1; }
mkdir -p docs/figures

# warmups
preheat plot "linear_warmup(1000)" "linear_warmup(1000, start=0.1)" --total 1500 --peak 1 --out docs/figures/linear_warmup.png
preheat plot "cosine_warmup(1000)" "cosine_warmup(1000, start=0.1)" "linear_warmup(1000)" --total 1500 --peak 1 --out docs/figures/cosine_warmup.png
preheat plot "polynomial_warmup(1000, power=0.5)" "polynomial_warmup(1000, power=2)" "polynomial_warmup(1000, power=3)" --total 1500 --peak 1 --out docs/figures/polynomial_warmup.png
preheat plot "exponential_warmup(tau=200) * cosine_decay(3000, end=0.1)" "exponential_warmup(beta2=0.999) * cosine_decay(3000, end=0.1)" --total 3000 --peak 1 --out docs/figures/exponential_warmup.png
preheat plot "untuned_linear_warmup(0.999) >> constant()" "untuned_linear_warmup(0.998) >> constant()" "exponential_warmup(beta2=0.999)" --total 4000 --peak 1 --out docs/figures/untuned_linear_warmup.png
preheat plot "radam_warmup(0.999)" "radam_warmup(0.99)" "untuned_linear_warmup(0.999) >> constant()" --total 4000 --peak 1 --out docs/figures/radam_warmup.png

# constant and decays
preheat plot "constant()" "constant(400, value=0.3) >> constant()" --total 1000 --peak 1 --out docs/figures/constant.png
preheat plot "linear_decay(1000)" "linear_decay(1000, end=0.1)" --total 1200 --peak 1 --out docs/figures/linear_decay.png
preheat plot "cosine_decay(1000)" "cosine_decay(1000, end=0.1)" "cosine_decay(1000, cycles=1.5)" --total 1200 --peak 1 --out docs/figures/cosine_decay.png
preheat plot "cosine_restarts(1000, cycles=3)" "cosine_restarts(1000, cycles=2, end=0.1)" --total 1200 --peak 1 --out docs/figures/cosine_restarts.png
preheat plot "polynomial_decay(1000, power=0.5)" "polynomial_decay(1000)" "polynomial_decay(1000, power=2, end=0.1)" --total 1200 --peak 1 --out docs/figures/polynomial_decay.png
preheat plot "exponential_decay(rate=0.997)" "exponential_decay(half_life=200, steps=800)" --total 1200 --peak 1 --out docs/figures/exponential_decay.png
preheat plot "step_decay(every=300, gamma=0.5)" "step_decay(milestones=[400, 800], gamma=0.1)" --total 1200 --peak 1 --out docs/figures/step_decay.png
preheat plot "inverse_sqrt(1000)" "linear_warmup(100) >> inverse_sqrt(100)" --total 5000 --peak 1 --out docs/figures/inverse_sqrt.png
preheat plot "one_minus_sqrt_decay(1000)" "one_minus_sqrt_decay(1000, end=0.1)" "linear_decay(1000)" --total 1200 --peak 1 --out docs/figures/one_minus_sqrt_decay.png

# composition and presets
preheat plot "linear_warmup(200) >> cosine_decay(800, end=0.1)" "join([linear_warmup(400), cosine_decay(800, end=0.1)], [200])" "exponential_warmup(tau=100) * cosine_decay(1000, end=0.1)" --total 1200 --peak 1 --out docs/figures/composition.png
preheat plot "warmup_cosine(100, 1000)" "warmup_linear(100, 1000, start=0.1, end=0.1)" "wsd(100, 1000)" --total 1200 --peak 1 --out docs/figures/presets.png
preheat plot "wsd(100, 1000, end=0.01)" "wsd(100, 1000, shape='cosine', end=0.01)" "wsd(100, 1000, shape='1-sqrt', end=0.01)" "wsd(100, 1000, shape='exponential', end=0.01)" --total 1000 --peak 1 --out docs/figures/wsd.png
preheat plot "from_hf_name('cosine', 100, 1000)" "from_hf_name('cosine_with_restarts', 100, 1000, num_cycles=2)" "from_hf_name('inverse_sqrt', 100)" "from_hf_name('warmup_stable_decay', 100, 1000, num_decay_steps=200, min_lr_ratio=0.1)" --total 1300 --peak 1 --out docs/figures/from_hf_name.png

# advise (docs/advise.md): the probes' figure on the digits task
preheat advise --task digits --steps 5000 --out runs/advise-digits && cp runs/advise-digits/advice.png docs/figures/advise-digits.png
