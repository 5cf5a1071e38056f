"""The lab: run warmups on real tasks, store every run, and compare them.

A run is a :class:`~preheat.lab.config.RunConfig` (task + optimizer + peak LR + schedule or
controller + steps + seed). The map, in the order data flows:

- :mod:`~preheat.lab.config`: run and sweep configs (pydantic), read from TOML/YAML or flags;
- :mod:`~preheat.lab.optimizers`: the optimizer registry (factory, family, preconditioned,
  stability threshold);
- :mod:`~preheat.lab.tasks`: the built-in tasks (river valley, digits, shakespeare-char,
  CIFAR-10; their names in :mod:`~preheat.lab.catalog`) and the loader for users' own;
  :mod:`~preheat.lab.models` their models;
- :mod:`~preheat.lab.run`: the one training loop (:func:`~preheat.lab.run.train`), with
  observers; :mod:`~preheat.lab.signals` the registry of what it measures for a controller; :mod:`~preheat.lab.peers`
  other packages' schedules and optimizers; :mod:`~preheat.lab.distributed` torchrun;
- :mod:`~preheat.lab.record`: a run's record (plain data, no torch);
  :mod:`~preheat.lab.store`: the SQLite store of one sweep directory;
- :mod:`~preheat.lab.sweep`: many runs into one store, resumably (local processes, Ray);
- :mod:`~preheat.lab.metrics` (per run, per method, the ranking with intervals),
  :mod:`~preheat.lab.verdict` (what to use, how sure, what next), :mod:`~preheat.lab.methods`
  (what each method is), :mod:`~preheat.lab.figure_data` (what the figures show, pure NumPy),
  :mod:`~preheat.lab.figures` (drawing it), :mod:`~preheat.lab.report_figures` (the report's
  figures), :mod:`~preheat.lab.report`: what a sweep showed, read from the store alone;
- :mod:`~preheat.lab.compare`: the curated comparison behind ``preheat compare``;
  :mod:`~preheat.lab.diagnose`: one run's sharpness and smoothness (``preheat diagnose``).

Reading a store (metrics, report) imports no training code and no torch.
"""
