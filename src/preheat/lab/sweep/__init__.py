"""Run many configs into one store, resumably, on the engine of your choice.

``run_sweep(runs, directory)`` registers every run in ``DIR/runs.sqlite``, skips runs already
done there, and runs the rest:

- locally: in this process with ``workers=1``, else on that many worker processes, each with
  ``cores // workers`` torch threads (:mod:`preheat.lab.sweep.local`);
- on a Ray cluster, one Ray task per run, retried when its worker dies
  (``backend=RayBackend(...)``, :mod:`preheat.lab.sweep.ray`);
- under ``torchrun``: every rank runs every run together, each run spread over the processes
  with DistributedDataParallel (:mod:`preheat.lab.distributed`); rank 0 writes the store.

Results come back to this process, which alone writes the store, one run per transaction; a
killed sweep loses only the runs in flight, and rerunning it does just those.
"""

from preheat.lab.sweep.driver import Progress, Silent, SweepConflict, SweepIncomplete
from preheat.lab.sweep.local import cores
from preheat.lab.sweep.runner import run_sweep
from preheat.lab.sweep.worker import PROGRESS_EVERY

__all__ = ["PROGRESS_EVERY", "Progress", "Silent", "SweepConflict", "SweepIncomplete", "cores", "run_sweep"]
