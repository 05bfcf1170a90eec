"""iou_lib.budget: time estimates from a measured step time, the long-run confirmation, grid progress."""

import dataclasses
import io
import json
import math

import pytest

from iou_lib import budget
from iou_lib.train import DataSpec, TrainConfig


def _cfg(**kw) -> TrainConfig:
    data = kw.pop("data", DataSpec(n_train=64, n_val=40, image_size=32))
    settings = {"steps": 100, "width": 4, "depth": 2, "batch_size": 8, "progress": False, **kw}
    return TrainConfig(data, **settings)


def test_estimate_adds_steps_and_evaluation_passes():
    cfg = _cfg(eval_every=10)  # validations after steps 10, 20, ..., 100, then the test pass: 11 passes
    est = budget.estimate([cfg, dataclasses.replace(cfg, loss="soft_iou")], step_s=0.1, profile="fast")
    per_run = 0.1 * (100 + budget.EVAL_COST * 11 * math.ceil(40 / 8))
    assert est.runs == 2 and est.steps == 200
    assert est.seconds == pytest.approx(2 * per_run)
    assert est.step_s == (0.1,) and est.profile == "fast"
    assert str(est).startswith("under a minute in the fast profile")
    assert "2 runs, 200 optimizer steps at 100 ms per step" in str(est)


def test_camvid_runs_are_sized_from_the_split_and_scale():
    cam = _cfg(data=DataSpec(kind="camvid", class_name="Car", scale=4), steps=50, eval_every=5)
    assert budget._image_shape(cam) == (45, 60) and budget._classes(cam) == 1
    assert budget._classes(dataclasses.replace(cam, data=DataSpec(kind="camvid", scale=4))) == 11
    est = budget.estimate(cam, step_s=1.0)
    assert est.seconds == pytest.approx(50 + budget.EVAL_COST * 11 * math.ceil(101 / 8))


def test_step_seconds_is_measured_and_cached():
    cfg = _cfg()
    first = budget.step_seconds(cfg, repeats=1)
    assert 0 < first < 60
    same_shape = dataclasses.replace(cfg, loss="soft_iou", seed=3)
    assert budget.step_seconds(same_shape) == first  # cached
    bigger = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=48))
    assert budget.step_seconds(bigger, repeats=1) != first  # another shape is measured on its own
    with pytest.raises(ValueError, match="repeats"):
        budget.step_seconds(cfg, repeats=0)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="at least one"):
        budget.estimate([])
    with pytest.raises(ValueError, match="step_s"):
        budget.estimate(_cfg(), step_s=float("nan"))
    with pytest.raises(ValueError, match="seconds"):
        budget.format_minutes(-1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "under a minute"),
        (59, "under a minute"),
        (60, "about 1 min"),
        (14.6 * 60, "about 15 min"),
        (89 * 60, "about 89 min"),
        (3 * 3600, "about 3.0 h"),
    ],
)
def test_format_minutes(seconds, text):
    assert budget.format_minutes(seconds) == text


def test_long_plans_need_confirmation(monkeypatch):
    monkeypatch.delenv("IOU_RUN_LONG", raising=False)
    long = budget.Estimate(runs=8, steps=4800, seconds=40 * 60, step_s=(0.5,), device="cpu", profile="cpu")
    with pytest.raises(budget.LongRunNotConfirmed, match=r"about 40 min .* set RUN_LONG = True .*STORED"):
        budget.require_confirmation(long, confirmed=False)
    budget.require_confirmation(long, confirmed=True)  # said yes: no error
    monkeypatch.setenv("IOU_RUN_LONG", "1")
    budget.require_confirmation(long, confirmed=False)  # said yes for every cell
    monkeypatch.delenv("IOU_RUN_LONG")
    budget.require_confirmation(dataclasses.replace(long, seconds=10 * 60), confirmed=False)  # short enough
    with pytest.raises(budget.LongRunNotConfirmed, match="GO"):
        budget.require_confirmation(long, confirmed=False, limit_minutes=30, flag="GO")


def test_grid_progress_prints_one_line_per_run_with_time_left(monkeypatch):
    clock = iter([100.0, 160.0, 160.0, 220.0])  # start, then after each run
    monkeypatch.setattr(budget.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    on_done = budget.grid_progress(3, stream=out)
    cfg = _cfg()
    on_done(cfg, None)  # found finished on disk
    on_done(cfg, object())  # trained in 60 s
    on_done(cfg, object())
    lines = out.getvalue().splitlines()
    assert lines[0] == f"[1/3] {cfg.name}: already finished"
    assert lines[1] == f"[2/3] {cfg.name}: trained, about 1 min left"
    assert lines[2] == f"[3/3] {cfg.name}: trained"
    with pytest.raises(ValueError, match="total"):
        budget.grid_progress(0)


def test_notebook_times_table(tmp_path):
    times = {
        "fast": {"00_a": {"seconds": 12.0, "status": "ok"}, "06_b": {"seconds": 150.0, "status": "ok"}},
        "cpu": {"06_b": {"seconds": 20.0, "status": "needs confirmation", "estimate_min": 74.6}},
    }
    path = tmp_path / "times.json"
    path.write_text(json.dumps(times))
    table = budget.notebook_times(path)
    assert table.loc["00_a"].tolist() == ["12 s", "not measured"]
    assert table.loc["06_b"].tolist() == ["2.5 min", "asks to confirm a ≈75 min cell (after 20 s)"]
    assert budget.describe_time({"seconds": 9.0, "status": "error"}) == "failed after 9 s"


def _fixed_estimate(monkeypatch, minutes: float) -> None:
    monkeypatch.delenv("IOU_RUN_LONG", raising=False)
    plan = budget.Estimate(
        runs=3, steps=300, seconds=minutes * 60, step_s=(0.1,), device="cpu", profile="cpu"
    )
    monkeypatch.setattr(budget, "estimate", lambda configs: plan)


def test_track_prints_the_plan_and_one_line_per_run(monkeypatch):
    _fixed_estimate(monkeypatch, 3)
    clock = iter([0.0, 0.0, 120.0, 240.0, 300.0])  # start, before runs 1-3, end
    monkeypatch.setattr(budget.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    configs = [_cfg(loss=loss) for loss in ("bce", "soft_iou", "focal")]
    assert list(budget.track(configs, stream=out)) == configs
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("LIVE: about 3 min in the cpu profile")
    assert lines[1] == f"[1/3] {configs[0].name}: about 3 min left"  # the estimate before any run
    assert lines[2] == f"[2/3] {configs[1].name}: about 4 min left"  # 2 min per run measured, 2 to go
    assert lines[3] == f"[3/3] {configs[2].name}: about 2 min left"
    assert lines[4] == "done: 3 runs took 5 min (estimated 3 min)"


def test_track_and_check_stop_before_a_long_plan(monkeypatch):
    _fixed_estimate(monkeypatch, 40)
    trained = []
    with pytest.raises(budget.LongRunNotConfirmed, match="RUN_LONG = True"):
        for cfg in budget.track([_cfg()], stream=io.StringIO()):
            trained.append(cfg)
    assert trained == []  # nothing started
    assert budget.check([_cfg()], confirmed=True, stream=io.StringIO()).minutes == 40
