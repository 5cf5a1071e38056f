"""Log learning rates, controller signals and controller decisions to TensorBoard or MLflow.

A *sink* takes scalars by step and a controller's :class:`~preheat.adaptive.Decision` objects.
Two are provided, :class:`TensorBoardSink` and :class:`MLflowSink`; anything with the three
methods of :class:`Sink` works too. :func:`log_scheduler` logs what a
:class:`preheat.Scheduler` holds at a step: every group's LR (``lr/group0``, ``lr/group1``, ...),
the signals you pass (``signals/<name>``) and the controller's decisions not yet logged.

``step`` follows preheat's convention: the number of completed optimizer updates. The LR logged
at step ``k`` is the LR of update ``k`` (what ``scheduler.get_last_lr()`` returns after ``k``
calls of ``scheduler.step()``). A decision is logged at its own ``step``, the update whose
multiplier it set.

TensorBoard and MLflow are optional: ``pip install 'preheat[logging]'``. They are imported when a
sink is built, not when this module is.
"""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any, Protocol, runtime_checkable

_EXTRA = "pip install 'preheat[logging]'"


@runtime_checkable
class Sink(Protocol):
    """Where :func:`log_scheduler` (and the lab) send what they log."""

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Log each ``tag -> value`` at ``step`` (completed updates)."""

    def log_decision(self, decision: Any) -> None:
        """Log one controller :class:`~preheat.adaptive.Decision` at ``decision.step``."""

    def close(self) -> None:
        """Flush everything and release the backend; the sink is not used afterwards."""


def decision_dict(decision: Any) -> dict[str, Any]:
    """A decision as plain data: ``step``, ``multiplier``, ``action``, ``reason``, ``evidence``."""
    if is_dataclass(decision) and not isinstance(decision, type):
        data = asdict(decision)
    elif isinstance(decision, Mapping):
        data = dict(decision)
    else:
        data = {k: getattr(decision, k) for k in ("step", "multiplier", "action", "reason", "evidence")}
    data["step"] = int(data["step"])
    data["multiplier"] = float(data["multiplier"])
    data["evidence"] = {str(k): float(v) for k, v in dict(data.get("evidence") or {}).items()}
    return data


def _check_step(where: str, step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{where}: step={step!r} is invalid; expected an integer >= 0 "
                         "(the number of completed optimizer updates)")
    return step


def _scalars(where: str, values: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: values={values!r} is invalid; expected a mapping tag -> number")
    out = {}
    for tag, value in values.items():
        try:
            out[str(tag)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: values[{tag!r}]={value!r} is invalid; expected a number") from None
    return out


class TensorBoardSink:
    """Write to TensorBoard event files in ``log_dir`` (via ``torch.utils.tensorboard``).

    Scalars keep their tags (``lr/group0``, ``signals/loss``, ...). A decision becomes the scalar
    ``controller/multiplier`` and a text entry ``controller/decision`` (action, reason and
    evidence as a small Markdown table), both at the decision's step. Extra keyword arguments
    go to ``SummaryWriter`` (e.g. ``flush_secs``).
    """

    def __init__(self, log_dir: str | os.PathLike[str], **writer_kwargs: Any) -> None:
        try:
            import tensorboard  # noqa: F401  (torch's writer needs it; fail with our message)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError(f"TensorBoardSink needs torch and tensorboard: {_EXTRA} ({err})") from err
        self.log_dir = os.fspath(log_dir)
        self.writer = SummaryWriter(log_dir=self.log_dir, **writer_kwargs)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        step = _check_step("TensorBoardSink.log_scalars", step)
        for tag, value in _scalars("TensorBoardSink.log_scalars", values).items():
            self.writer.add_scalar(tag, value, global_step=step)

    def log_decision(self, decision: Any) -> None:
        d = decision_dict(decision)
        self.writer.add_scalar("controller/multiplier", d["multiplier"], global_step=d["step"])
        rows = "".join(f"| {k} | {v:.6g} |\n" for k, v in sorted(d["evidence"].items()))
        text = (f"**{d['action']}** -> multiplier {d['multiplier']:.6g} for update {d['step']}: "
                f"{d['reason']}\n\n" + (f"| evidence | value |\n|---|---|\n{rows}" if rows else ""))
        self.writer.add_text("controller/decision", text, global_step=d["step"])

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class MLflowSink:
    """Log to an MLflow run: scalars as metrics with their step, decisions as metrics and JSON.

    Args:
        experiment: the experiment's name (created if missing).
        run_name: the new run's name (MLflow picks one if None).
        tracking_uri: where MLflow stores runs (``http://host:5000``, ``sqlite:///path.db``,
            ``databricks``, ...). None: a local store in ``directory``.
        directory: the local store used when ``tracking_uri`` is None (default ``./mlruns``):
            the SQLite database ``mlflow.db`` and the folder ``artifacts`` in it. (MLflow 3
            refuses the old ``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE=true``; view the
            local store with ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``.)
        run_id: log into this existing run instead of starting one (it is then not ended by
            :meth:`close`).
        tags: tags set on a new run.

    Everything goes through an ``MlflowClient`` bound to this store: the global tracking URI and
    ``mlflow.active_run()`` are left as they are. A decision is logged as the metrics
    ``controller/multiplier`` and ``controller/action/<action>`` (1 at that step); at
    :meth:`close` all decisions (with reason and evidence) are written to the run as the
    artifact ``preheat/decisions.json``, and a run this sink started is ended. :attr:`run_id`
    names the run.
    """

    def __init__(self, experiment: str = "preheat", run_name: str | None = None,
                 tracking_uri: str | None = None, *, directory: str | os.PathLike[str] = "mlruns",
                 run_id: str | None = None, tags: Mapping[str, str] | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as err:
            raise ImportError(f"MLflowSink needs mlflow (or mlflow-skinny): {_EXTRA} ({err})") from err
        artifacts = None
        if tracking_uri is None:
            root = Path(directory).resolve()
            root.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
            artifacts = (root / "artifacts").as_uri()
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._owns_run = run_id is None
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (found.experiment_id if found
                             else self.client.create_experiment(experiment, artifact_location=artifacts))
            run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
            run_id = run.info.run_id
        self.run_id = run_id
        self.decisions: list[dict[str, Any]] = []
        self._closed = False

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        step = _check_step("MLflowSink.log_scalars", step)
        self._log(step, _scalars("MLflowSink.log_scalars", values))

    def log_decision(self, decision: Any) -> None:
        d = decision_dict(decision)
        self.decisions.append(d)
        self._log(d["step"], {"controller/multiplier": d["multiplier"],
                              f"controller/action/{d['action']}": 1.0})

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.decisions:
            self.client.log_text(self.run_id, json.dumps(self.decisions, indent=1), "preheat/decisions.json")
        if self._owns_run:
            self.client.set_terminated(self.run_id)

    def _log(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        for i in range(0, len(metrics), 1000):  # MLflow's log_batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])


# controller -> {weak reference to a sink (its id if it takes none): its decisions logged so far}.
# A dead reference never equals a live one, so a new sink is never mistaken for an old one.
_logged: weakref.WeakKeyDictionary[Any, dict[Any, int]] = weakref.WeakKeyDictionary()


def _key(sink: Any) -> Any:
    try:
        return weakref.ref(sink)
    except TypeError:
        return id(sink)


def log_scheduler(sink: Sink, scheduler: Any, step: int | None = None,
                  signals: Mapping[str, float] | None = None) -> None:
    """Log ``scheduler``'s LRs (``lr/group<i>``), ``signals`` (``signals/<name>``) and new decisions.

    The LRs are ``scheduler.get_last_lr()``: after ``k`` calls of ``scheduler.step()``, those of
    update ``k``. ``step`` defaults to ``scheduler.last_epoch`` (that ``k``), so the LR logged at
    step ``k`` is the one update ``k`` uses. The usual place is once per update, right after
    ``optimizer.step()`` and before ``scheduler.step()``, with that update's index as ``step``
    (the default gives the same number there). With a controller, every decision it took since
    the last call for this sink goes to ``sink.log_decision``, each once however often this is
    called (a new sink gets the whole history).
    """
    if step is None:
        step = int(scheduler.last_epoch)
    step = _check_step("log_scheduler", step)
    values = {f"lr/group{i}": float(lr) for i, lr in enumerate(scheduler.get_last_lr())}
    for name, value in _scalars("log_scheduler", signals or {}).items():
        values[f"signals/{name}"] = value
    sink.log_scalars(step, values)
    controller = getattr(scheduler, "controller", None)
    if controller is None:
        return
    done = _logged.setdefault(controller, {})
    decisions = controller.decisions
    start = done.get(_key(sink), 0)
    if start > len(decisions):  # the controller was reloaded with fewer decisions
        start = 0
    for decision in decisions[start:]:
        sink.log_decision(decision)
    done[_key(sink)] = len(decisions)

