"""The warmup benchmark (``preheat bench``): tasks where warmup matters, a truly tuned baseline,
paired statistics, and the peers people reach for.

- :mod:`~.tasks`: the tasks, their dev/test split, peak-LR ladders and sizes;
- :mod:`~.plan`: the methods and the tiers (``tiny``, ``quick``, ``full``): what runs;
- :mod:`~.runner`: runs a tier into resumable lab stores, sharded by task;
- :mod:`~.analysis`: cells, the tuned baseline and paired comparisons, from the stores;
- :mod:`~.tables` and :mod:`~.figures`: the Markdown tables and the figure per task.

See ``docs/results.md``.
"""
