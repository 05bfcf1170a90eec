"""Stored experiment results (data/results/) and the tool that makes them (tools/make_results.py)."""

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "data" / "results"
spec = importlib.util.spec_from_file_location("make_results", ROOT / "tools" / "make_results.py")
make_results = importlib.util.module_from_spec(spec)
sys.modules["make_results"] = make_results  # dataclasses look their module up while the file executes
spec.loader.exec_module(make_results)
Unit, Variant = make_results.Unit, make_results.Variant


@pytest.mark.parametrize("group", ["synthetic", "camvid"])
def test_first_grid_tables_are_well_formed_with_provenance(group):
    table = pd.read_csv(RESULTS / f"{group}_cpu.csv", keep_default_na=False)
    prov = json.loads((RESULTS / f"{group}_cpu.json").read_text())
    assert {"run", "loss", "seed", "split", "epoch", "metric", "value"} <= set(table.columns)
    assert prov["n_runs"] == table["run"].nunique() > 0 and prov["git_commit"] and prov["device"]
    for _, run in table.groupby("run"):
        test = run[run["split"] == "test"].set_index("metric")["value"].astype(float)
        assert test.loc[["miou_d", "pixel_acc"]].between(0, 1).all()


def test_plan_lists_the_primary_contrast_first_and_each_run_once():
    plan = make_results.PLANS["cpu"]
    units = make_results.units(plan)
    seeded = [u for u in units if u.study != "lr"]
    assert [(u.study, u.variant.loss, u.fg_frac) for u in seeded[:2]] == [
        ("primary", "soft_iou", 0.01),
        ("primary", "bce", 0.01),
    ]
    # the calibration study re-trains three losses at 1 % (fresh runs, in their own run folders)
    calibration = [u for u in seeded if u.study == "calibration"]
    assert seeded[2:5] == calibration and {u.variant.loss for u in calibration} == {
        "bce",
        "weighted_bce",
        "soft_iou",
    }
    cfg = make_results.config_for(plan, calibration[0], 0, 0.01, Path("runs"))
    assert Path(cfg.out_dir).parent == Path("runs/calibration") and not cfg.compile
    compiled = make_results.config_for(plan, calibration[0], 0, 0.01, Path("runs"), compile=True)
    assert compiled.compile and compiled.name == cfg.name  # a runtime setting: same run
    seeded = seeded[:2] + seeded[5:]
    assert seeded[2].study == "imbalance" and seeded[2].fg_frac == 0.01 and len(seeded[2].seeds) == 5
    keys = [
        (u.data, u.variant, u.fg_frac, u.class_name, u.lr, s)
        for u in units
        for s in u.seeds
        if u not in calibration
    ]
    assert len(keys) == len(set(keys))  # shared runs (BCE at 1 % in three studies) are listed once
    # imbalance: 4 losses x 6 fractions x 5 seeds (+5 seeds at 1 %), less the 10 primary runs
    assert make_results.n_runs([u for u in units if u.study == "imbalance"]) == 4 * 6 * 5 + 4 * 5 - 10
    shoot = {u.variant.label for u in units if u.study == "shootout"}
    assert {
        "soft_iou (per image)",
        "bce then lovasz_hinge",
        "lovasz_hinge",
        "tversky alpha=0.3 beta=0.7",
    } <= shoot
    assert all(len(u.seeds) >= 3 for u in units if u.data == "camvid")
    assert {len(u.seeds) for u in units if u.study in ("primary", "imbalance", "shootout")} >= {5}


def test_shootout_tversky_is_not_soft_dice():
    """The library's Tversky default (alpha = beta = 0.5) is soft Dice; the shoot-out trains alpha 0.3,
    beta 0.7 under a label and run ids of its own."""
    (pooled, per_image) = [v for v in make_results.PLANS["cpu"].shootout if v.loss == "tversky"]
    assert pooled.options() == {"tversky": {"per_image": False, "alpha": 0.3, "beta": 0.7}}
    assert per_image.options()["tversky"]["per_image"] is True
    assert pooled.label == "tversky alpha=0.3 beta=0.7" and pooled.slug == "tversky-a0.3-b0.7"
    assert per_image.slug == "tversky-a0.3-b0.7_pi"


def test_region_losses_get_the_aggregation_of_their_variant():
    assert Variant("soft_iou").options() == {"soft_iou": {"per_image": False}}
    assert Variant("lovasz_hinge").options() == {"lovasz_hinge": {"per_image": False}}  # batch, like the rest
    assert Variant("bce").options() == {}
    assert Variant("0.25*bce+0.75*soft_iou", per_image=True).options() == {"soft_iou": {"per_image": True}}


def fake_run(folder, study, variant, lr, seed, val_score, plan):
    unit = Unit(study, "synthetic", variant, (seed,), plan.primary_frac, lr=lr)
    path = make_results.stored_path(folder, plan, study, unit.run_id(seed, lr))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"run": [unit.run_id(seed, lr)], "study": [study], "value": [val_score]}).to_csv(
        path, index=False
    )
    path.with_suffix(".json").write_text(json.dumps({"summary": {"val": {"miou_d@tuned": val_score}}}))
    return unit


def test_learning_rate_is_chosen_on_validation_once_every_rate_is_stored(tmp_path):
    plan = make_results.PLANS["cpu"]
    v = Variant("soft_iou")
    fake_run(tmp_path, "lr", v, plan.lr_grid[0], 0, 0.30, plan)
    assert make_results.chosen_lr(tmp_path, plan, v) is None
    fake_run(tmp_path, "lr", v, plan.lr_grid[1], 0, 0.45, plan)
    fake_run(tmp_path, "lr", v, plan.lr_grid[2], 0, 0.45, plan)
    assert make_results.chosen_lr(tmp_path, plan, v) == plan.lr_grid[1]  # a tie goes to the smaller rate
    unit = Unit("primary", "synthetic", v, (0, 1), plan.primary_frac)
    (ready,) = make_results.resolve(plan, unit, tmp_path)
    assert ready.lr == plan.lr_grid[1]
    # seed 0 at the chosen rate was trained by the search: the primary study stores a copy, relabelled
    assert make_results.copy_stored(tmp_path, plan, ready, ready.run_id(0, ready.lr))
    copied = pd.read_csv(make_results.stored_path(tmp_path, plan, "primary", ready.run_id(0, ready.lr)))
    assert copied["study"].tolist() == ["primary"]
    assert not make_results.copy_stored(tmp_path, plan, ready, ready.run_id(1, ready.lr))
    # the calibration study trains afresh: it never copies a stored run
    fresh = Unit("calibration", "synthetic", v, (0,), plan.primary_frac, lr=ready.lr)
    assert not make_results.copy_stored(tmp_path, plan, fresh, fresh.run_id(0, ready.lr))


def test_a_copied_run_keeps_every_cell_of_a_schedule_label_with_a_comma(tmp_path):
    """A schedule's label ("bce:250,lovasz_hinge") is a quoted CSV cell; the copy must relabel the study
    only (splitting lines on commas once shifted the study into the value column of such a run)."""
    plan = make_results.PLANS["cpu"]
    v = Variant("bce:{warmup},lovasz_hinge")
    source = make_results.stored_path(tmp_path, plan, "lr", "run0")
    source.parent.mkdir(parents=True)
    rows = pd.DataFrame(
        {"run": ["run0"] * 2, "variant": ["bce:250,lovasz_hinge"] * 2, "metric": ["miou_d", "ap"]}
        | {"value": [0.125, 0.5], "study": ["lr"] * 2, "lr": [0.03] * 2}
    )
    rows.to_csv(source, index=False)
    source.with_suffix(".json").write_text(json.dumps({"study": "lr", "summary": {}}))
    unit = Unit("shootout", "synthetic", v, (0,), plan.primary_frac, lr=0.03)
    assert make_results.copy_stored(tmp_path, plan, unit, "run0")
    copied = pd.read_csv(make_results.stored_path(tmp_path, plan, "shootout", "run0"))
    pd.testing.assert_frame_equal(copied, rows.assign(study="shootout"))


def test_reduce_rows_keeps_curves_tests_and_the_summary():
    rows = [
        {"run": "r", "split": "val", "step": 10 * i, "metric": m, "value": 0.1 * i}
        for i in (1, 2)
        for m in ("miou_d", "miou_i", "miou_d@tuned")
    ]
    rows += [
        {"run": "r", "split": "test", "step": 20, "metric": m, "value": 0.5}
        for m in ("miou_d", "curve_d@0.5")
    ]
    rows += [{"run": "r", "split": "train", "step": 10, "metric": "images_per_s", "value": 99.0}]
    summary = {"steps": 20, "best_step": 20, "collapsed": False, "wall_s": 3.5}
    out = make_results.reduce_rows(pd.DataFrame(rows), summary, {"study": "primary", "lr": 0.003})
    assert set(out.loc[out["split"] == "val", "metric"]) == {"miou_d", "miou_d@tuned"}
    assert set(out.loc[out["split"] == "test", "metric"]) == {"miou_d", "curve_d@0.5"}
    assert "images_per_s" not in set(out["metric"])
    got = out[out["split"] == "summary"].set_index("metric")["value"].to_dict()
    assert got == {"steps": 20.0, "best_step": 20.0, "collapsed": 0.0, "wall_s": 3.5}
    assert (out["study"] == "primary").all() and (out["lr"] == 0.003).all()


def test_dry_run_prints_counts_and_a_time_estimate(capsys, tmp_path):
    assert make_results.main(["--dry-run", "--results-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    total = make_results.n_runs(make_results.units(make_results.PLANS["cpu"]))
    assert f"total           {total} runs" in text and "h left" in text and "primary" in text
    assert make_results.main(["--dry-run", "--profile", "gpu", "--results-dir", str(tmp_path)]) == 0
    assert "128 px" in capsys.readouterr().out


def test_quick_grid_trains_stores_and_resumes(tmp_path, monkeypatch):
    from iou_lib.train import TrainConfig

    if "steps" not in TrainConfig.__dataclass_fields__:
        pytest.skip("the step-budget engine (issue 10) is not in this tree yet")
    argv = [
        "--profile",
        "quick",
        "--only",
        "primary",
        "--results-dir",
        str(tmp_path / "res"),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    assert make_results.main(argv) == 0
    plan = make_results.PLANS["quick"]
    stored = sorted((tmp_path / "res" / "quick").glob("*/*.csv"))
    assert {p.parent.name for p in stored} == {"lr", "primary"}
    primary = pd.concat([pd.read_csv(p) for p in stored if p.parent.name == "primary"])
    assert sorted(primary["variant"].unique()) == ["bce", "soft_iou"] and primary["seed"].nunique() == 2
    assert {"summary", "test", "val", "train"} <= set(primary["split"])
    record = json.loads(stored[0].with_suffix(".json").read_text())
    assert record["config"]["steps"] == plan.steps and "git_commit" in record and "device" in record
    before = {p: p.stat().st_mtime_ns for p in stored}
    assert make_results.main(argv) == 0  # everything stored: nothing retrained, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in stored} == before


def test_gpu_plan_needs_cuda_and_runs_workers_by_default(capsys):
    import torch

    assert make_results.PLANS["gpu"].jobs > 1 and make_results.PLANS["cpu"].jobs == 1
    if not torch.cuda.is_available():
        assert make_results.main(["--profile", "gpu", "--only", "primary"]) == 1
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_time_estimate_shares_a_group_wall_time_among_its_seeds(tmp_path):
    """A run trained in a group of 5 seeds stores the group's wall time; the estimate per run divides it."""
    plan = make_results.PLANS["cpu"]
    folder = tmp_path / plan.name / "imbalance"
    folder.mkdir(parents=True)
    records = [(500.0, 5), (100.0, 1)]  # (wall_s, seeds trained together)
    for i, (wall, together) in enumerate(records):
        record = {
            "wall_s": wall,
            "config": {"data": {"kind": "synthetic"}},
            "summary": {"seeds_together": together},
        }
        (folder / f"run{i}.json").write_text(json.dumps(record))
    assert make_results.run_seconds(plan, tmp_path)["synthetic"] == pytest.approx(100.0)


def test_workers_claim_units_so_each_runs_once_and_busy_searches_wait(tmp_path):
    """Two workers (threads: a lock file conflicts across open() calls) share the units through lock files:
    each unit is trained once, both workers train, and a unit whose learning-rate search another worker
    holds is done after the others instead of blocking the worker."""
    import threading
    import time as clock

    units = [Unit("imbalance", "synthetic", Variant(f"l{i}"), (0,), 0.01, lr=0.01) for i in range(6)]
    done: dict[str, str] = {}
    guard = threading.Lock()

    def train(unit):
        with guard:
            if unit.variant.loss in done:  # stored by the other worker meanwhile
                return 0
        clock.sleep(0.05)
        with guard:
            done[unit.variant.loss] = threading.current_thread().name
        return 1

    def resolve_unit(unit, wait):
        yield unit

    workers = [
        threading.Thread(target=make_results.work, args=(units, train, tmp_path, resolve_unit, 0.01), name=n)
        for n in ("a", "b")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert sorted(done) == [f"l{i}" for i in range(6)] and set(done.values()) == {"a", "b"}

    # a unit whose search is locked elsewhere is retried after the rest, not waited for
    order = []

    def searched(unit, wait):
        with make_results.locked(tmp_path, f"lr_{unit.variant.slug}", wait):
            yield unit

    held = open(tmp_path / "lr_l0.lock", "w")
    import fcntl

    fcntl.flock(held, fcntl.LOCK_EX)
    threading.Timer(0.3, held.close).start()  # the other worker's search ends
    trained = make_results.work(
        units[:3], lambda u: order.append(u.variant.loss) or 1, tmp_path, searched, 0.05
    )
    assert trained == 3 and order == ["l1", "l2", "l0"]


def test_max_runs_stops_after_the_unit_that_reaches_it(tmp_path, capsys):
    argv = ["--profile", "quick", "--only", "primary", "--max-runs", "1"]
    argv += ["--results-dir", str(tmp_path / "res"), "--runs-dir", str(tmp_path / "runs")]
    assert make_results.main(argv) == 0
    # the first unit is soft IoU's learning-rate search: one run at the first rate
    assert "stopped after 1 runs (--max-runs)" in capsys.readouterr().out
    assert [p.parent.name for p in (tmp_path / "res" / "quick").glob("*/*.json")] == ["lr"]
