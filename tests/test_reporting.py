"""iou_lib.reporting: intervals, paired differences, tables and figures from tidy result rows."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from iou_lib import reporting


def rows(loss, seed, value, metric="miou_d", **extra):
    base = {
        "run": f"{loss}_s{seed}",
        "data": "synthetic",
        "fg_frac": 0.02,
        "class_name": "",
        "loss": loss,
        "model": "unet",
        "seed": seed,
        "split": "test",
        "epoch": 2,
        "metric": metric,
        "value": value,
    }
    return {**base, **extra}


@pytest.fixture
def table():
    vals = {"bce": [0.10, 0.20, 0.30], "soft_iou": [0.40, 0.42, 0.50]}
    out = [rows(loss, s, v) for loss, vs in vals.items() for s, v in enumerate(vs)]
    out += [rows("bce", 0, 0.99, epoch=1)]  # an earlier epoch: never used
    out += [
        rows(loss, s, 0.5, split="val", epoch=e, metric="miou_d")
        for loss in vals
        for s in range(3)
        for e in (1, 2)
    ]
    out += [
        rows(loss, s, 1.0 / e, split="train", epoch=e, metric="loss")
        for loss in vals
        for s in range(3)
        for e in (1, 2)
    ]
    return pd.DataFrame(out)


def test_t_interval_matches_the_t_quantile():
    v = np.array([0.5, 0.6, 0.7])
    lo, hi = reporting.t_interval(v)
    half = 4.302653 * v.std(ddof=1) / math.sqrt(3)  # t(0.975, 2) from tables
    assert lo == pytest.approx(0.6 - half, abs=1e-5) and hi == pytest.approx(0.6 + half, abs=1e-5)
    assert reporting.t_interval([0.3]) == (0.3, 0.3)
    assert all(math.isnan(x) for x in reporting.t_interval([]))


def test_final_values_takes_each_runs_last_epoch(table):
    final = reporting.final_values(table)
    assert len(final) == 6 and 0.99 not in final["value"].tolist()


def test_paired_differences_pair_by_seed(table):
    d = reporting.paired_differences(table, baseline="bce", by=())
    assert d["loss"].eq("soft_iou").all()
    np.testing.assert_allclose(d.sort_values("seed")["diff"], [0.30, 0.22, 0.20])
    # a seed without a baseline run is left out, not compared with another seed
    d = reporting.paired_differences(table[table["run"] != "bce_s2"], baseline="bce", by=())
    assert sorted(d["seed"]) == [0, 1]
    with pytest.raises(ValueError, match="baseline 'focal' has no runs"):
        reporting.paired_differences(table, baseline="focal", by=())
    with pytest.raises(ValueError, match="lacks the columns"):
        reporting.paired_differences(table.drop(columns="seed"), by=())


def test_results_table_formats_mean_and_interval_in_row_order(table):
    t = reporting.results_table(table, {"miou_d": "IoU"})
    assert list(t.index) == ["bce", "soft_iou"]
    lo, hi = reporting.t_interval([0.1, 0.2, 0.3])
    assert t.loc["bce", "IoU"] == f"0.200 [{lo:.3f}, {hi:.3f}]" and lo == 0.0  # clipped at 0
    one = reporting.results_table(table[table["seed"] == 0], {"miou_d": "IoU"})
    assert one.loc["soft_iou", "IoU"] == "0.400"  # one run: no interval


def test_class_table_binary_and_multiclass():
    binary = pd.DataFrame(
        [
            rows(loss, 0, v, class_name=c, run=f"{c}_{loss}")
            for c, loss, v in [
                ("car", "bce", 0.6),
                ("car", "soft_iou", 0.7),
                ("pedestrian", "bce", 0.1),
                ("pedestrian", "soft_iou", 0.3),
            ]
        ]
    )
    t = reporting.class_table(binary)
    assert list(t.index) == ["Car", "Pedestrian", "mean"] and list(t.columns) == ["bce", "soft_iou"]
    assert t.loc["mean", "soft_iou"] == pytest.approx(0.5)
    multi = pd.DataFrame(
        [
            rows(loss, 0, v, metric=m, run=loss)
            for loss, vals in {"cross_entropy": (0.9, 0.1, 0.5), "lovasz_softmax": (0.8, 0.3, 0.55)}.items()
            for m, v in zip(("iou_d/Sky", "iou_d/Pole", "miou_d"), vals, strict=True)
        ]
    )
    t = reporting.class_table(multi)
    assert list(t.index) == ["Sky", "Pole", "mIoU"]
    assert t.loc["Pole", "lovasz_softmax"] == pytest.approx(0.3) and t.loc["mIoU", "cross_entropy"] == 0.5
    with pytest.raises(ValueError, match="mixes binary"):
        reporting.class_table(pd.concat([binary, multi]))


def test_figures_draw_the_data(table):
    fig = reporting.mean_ci_plot(table, "miou_d")
    assert isinstance(fig, Figure)
    dots = np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections if len(c.get_offsets())])
    assert sorted(np.round(dots, 2))[:6] == [0.1, 0.2, 0.3, 0.4, 0.42, 0.5]  # every seed drawn
    fig = reporting.paired_difference_plot(reporting.paired_differences(table, by=()), x="loss", hue=None)
    assert isinstance(fig, Figure) and fig.axes[0].get_lines()
    fig = reporting.learning_curves(table)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == [
        "training loss",
        "val IoU at p = 0.5",
    ]
    assert fig.axes[0].get_xlabel() == "epoch"  # an old table (column epoch)
    assert reporting.learning_curves(table.rename(columns={"epoch": "step"})).axes[0].get_xlabel() == (
        "optimizer step"
    )
    assert "miou" not in fig.axes[1].get_ylabel()
    with pytest.raises(ValueError, match="no test curve_d"):
        reporting.threshold_curves(table)
    curve = pd.DataFrame([rows("bce", 0, t, metric=f"curve_d@{t:.2f}") for t in (0.25, 0.5, 0.75)])
    assert isinstance(reporting.threshold_curves(curve), Figure)


def test_predictions_side_by_side_titles_show_iou_and_leave_out_ignored_pixels():
    x = torch.rand(2, 3, 4, 4)
    y = torch.zeros(2, 4, 4, dtype=torch.long)
    y[:, :2] = 1
    y[1, 3] = 255  # ignored row
    p = torch.zeros(2, 4, 4)
    p[:, :1] = 0.9  # half of the foreground
    p[1, 3] = 0.9  # false positives on ignored pixels: not counted
    fig = reporting.predictions_side_by_side(x, y, {"model": p})
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 6 and titles[2] == "model\nIoU 0.50" and titles[5] == "IoU 0.50"
    with pytest.raises(ValueError, match="images must be a"):
        reporting.predictions_side_by_side(x[:, :1], y, {})
    with pytest.raises(ValueError, match="probs\\['m'\\]"):
        reporting.predictions_side_by_side(x, y, {"m": p[:1]})


def test_camvid_available_decides_without_raising(tmp_path, monkeypatch):
    assert reporting.camvid_available(tmp_path) is None  # empty folder
    monkeypatch.setenv("IOU_DATA_DIR", str(tmp_path))
    assert reporting.camvid_available() is None
    monkeypatch.delenv("IOU_DATA_DIR")
    assert reporting.camvid_available() is None  # nothing configured
    (tmp_path / "camvid" / "train" / "labels").mkdir(parents=True)
    assert reporting.camvid_available(tmp_path) == tmp_path / "camvid"


def test_stored_results_reads_the_profile_asked_for_and_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no stored results s_cpu.csv .*there are: none"):
        reporting.stored_results("s", "cpu", tmp_path)
    for profile in ("cpu", "gpu"):
        pd.DataFrame([rows("bce", 0, 0.5 if profile == "gpu" else 0.1)]).to_csv(tmp_path / f"s_{profile}.csv")
        prov = {"profile": profile, "table": f"s_{profile}.csv"}
        (tmp_path / f"s_{profile}.json").write_text(json.dumps(prov))
    table, prov = reporting.stored_results("s", "cpu", tmp_path)  # a gpu table never replaces it silently
    assert prov["profile"] == "cpu" and table["value"].tolist() == [0.1]
    table, prov = reporting.stored_results("s", "gpu", tmp_path)
    assert prov["profile"] == "gpu" and table["value"].tolist() == [0.5]
    assert "STORED results (s_gpu.csv)" in reporting.provenance_text(prov)


def test_stored_study_concatenates_runs_with_a_json_and_summarises_provenance(tmp_path):
    folder = tmp_path / "cpu" / "primary"
    folder.mkdir(parents=True)
    for seed, clean in ((0, True), (1, False)):
        pd.DataFrame([rows("bce", seed, 0.2 + seed, step=100)]).drop(columns="epoch").to_csv(
            folder / f"r{seed}.csv", index=False
        )
        record = {"git_commit": "abc1234567890", "clean_tree": clean, "device": "cpu", "wall_s": 30.0}
        (folder / f"r{seed}.json").write_text(json.dumps(record))
    pd.DataFrame([rows("bce", 9, 0.9)]).to_csv(folder / "unfinished.csv", index=False)  # no json: not stored
    table, prov = reporting.stored_study("primary", "cpu", tmp_path)
    assert sorted(table["seed"]) == [0, 1] and prov["n_runs"] == 2 and prov["wall_s"] == 60.0
    assert prov["clean_tree"] is False and "uncommitted" in reporting.provenance_text(prov)
    empty, prov = reporting.stored_study("imbalance", "cpu", tmp_path)
    assert empty.empty and prov["n_runs"] == 0


def test_mean_ci_plot_keeps_iou_intervals_inside_unit_interval():
    t = pd.DataFrame([rows("bce", s, v) for s, v in enumerate([0.0, 0.0, 0.05])])
    fig = reporting.mean_ci_plot(t, "miou_d")
    lows = [min(line.get_ydata()) for line in fig.axes[0].get_lines() if len(line.get_ydata())]
    assert min(lows) >= 0.0
    assert fig.axes[0].get_ylabel() == "test IoU at p = 0.5"


def test_convergence_flags_a_rising_curve_and_passes_a_flat_one():
    def curve(run, values, loss):
        return [
            rows(loss, 0, v, run=run, split="val", epoch=None, step=10 * i) for i, v in enumerate(values, 1)
        ]

    flat = curve("a", [0.1, 0.4, 0.5, 0.55, 0.56, 0.56, 0.57, 0.56, 0.57, 0.57], "soft_iou")
    rising = curve("b", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.1, 0.2, 0.3], "bce")
    out = reporting.convergence(pd.DataFrame(flat + rising).drop(columns="epoch")).set_index("loss")
    assert out.loc["soft_iou", "plateaued"] and not out.loc["bce", "plateaued"]
    # bce: last two 0.2, 0.3 against 0.05, 0.1 before
    assert out.loc["bce", "mean_change"] == pytest.approx(0.175) and out.loc["bce", "evals"] == 10
    with pytest.raises(ValueError, match="no validation rows"):
        reporting.convergence(pd.DataFrame(flat).drop(columns="epoch"), metric="ap")


def test_calibration_bins_match_a_brute_force_count():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(2, 16, 16, generator=g)
    y = (torch.rand(2, 16, 16, generator=g) < p).long()
    y[0, 0, :4] = 255  # ignored
    bins, ece = reporting.calibration_bins(p, y, n_bins=5)
    keep = y != 255
    pk, yk = p[keep], y[keep].double()
    expected = 0.0
    for b in range(5):
        m = (pk >= b / 5) & ((pk < (b + 1) / 5) if b < 4 else (pk <= 1))
        row = bins[np.isclose(bins["bin_low"], b / 5)].iloc[0]
        assert row["pixels"] == int(m.sum()) and row["frequency"] == pytest.approx(yk[m].mean().item())
        expected += (
            m.sum().item() / keep.sum().item() * abs(yk[m].mean().item() - pk[m].double().mean().item())
        )
    assert ece == pytest.approx(expected)
    assert reporting.calibration_bins(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))[1] == 0.0
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        reporting.calibration_bins(torch.tensor([1.5]), torch.tensor([1]))
    fig = reporting.reliability_diagram({"bce": p}, y, n_bins=5)
    assert "ECE" in fig.axes[0].get_legend().get_texts()[1].get_text()


def test_prediction_grid_has_a_colour_legend_and_explains_void():
    x, y = torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    y[0, 0] = 1
    legend = [
        t.get_text() for t in reporting.predictions_side_by_side(x, y, {"m": y.float()}).legends[0].texts
    ]
    assert legend == ["true negative", "false positive", "false negative", "true positive"]
    y[0, 3] = 255
    fig = reporting.predictions_side_by_side(x, y, {"m": y.float()}, panel=2.5)
    assert any("void" in t.get_text() for t in fig.legends[0].texts)
    assert fig.get_size_inches()[0] == pytest.approx(2.5 * 3)


def _calibration_rows(loss: str, seed: int, shift: float) -> list[dict]:
    from iou_lib.thresholds import ThresholdHistogram
    from iou_lib.train.evaluation import _binary_metrics

    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(4, 32, 32, generator=g) < 0.2).long()
    hist = ThresholdHistogram()
    hist.update(2 * torch.randn(4, 32, 32, generator=g) + 3 * (y - 0.5) + shift, y)
    metrics = _binary_metrics(hist.compute(), None)
    return [
        {"loss": loss, "seed": seed, "split": "test", "metric": k, "value": v}
        for k, v in metrics.items()
        if k == "ece" or k.startswith("calib_")
    ]


def test_stored_reliability_pools_seeds_and_reports_ece():
    rows = [r for s in (0, 1) for r in _calibration_rows("a", s, 0.0)] + _calibration_rows("b", 0, 2.0)
    table = pd.DataFrame(rows)
    fig = reporting.stored_reliability(table)
    lines = {line.get_label().split(" (")[0]: line for line in fig.axes[0].lines}
    b = table[table["loss"] == "b"].set_index("metric")["value"]
    used = [k for k in range(10) if b[f"calib_share@{k}"] > 0]
    # one seed: the curve is that run's bins
    assert lines["b"].get_xdata() == pytest.approx([b[f"calib_conf@{k}"] for k in used])
    assert lines["b"].get_ydata() == pytest.approx([b[f"calib_freq@{k}"] for k in used])
    ece_a = table[(table["loss"] == "a") & (table["metric"] == "ece")]["value"].mean()
    assert f"ECE {ece_a:.3f}" in lines["a"].get_label() and "2 seeds" in lines["a"].get_label()
    with pytest.raises(ValueError, match="before the engine measured calibration"):
        reporting.stored_reliability(table[~table["metric"].str.startswith("calib_")])


def test_curves_of_many_losses_keep_colours_apart_and_dash_the_per_image_variants():
    """Eleven losses, six with a per-image variant: one colour per loss, the per-image variant dashed in
    its loss's colour (not a 17th colour of its own, hard to tell from its neighbours)."""
    losses = [f"loss{i}" for i in range(11)]
    names = losses + [f"{n} (per image)" for n in losses[:6]]
    curve = pd.DataFrame(
        [
            rows(n, 0, t * (1 + i), metric=f"curve_d@{t:.2f}")
            for i, n in enumerate(names)
            for t in (0.25, 0.75)
        ]
    )
    ax = reporting.threshold_curves(curve).axes[0]
    lines = [line for line in ax.get_lines() if list(line.get_xdata()) == [0.25, 0.75]]  # not the 0.5 marker
    assert len(lines) == len(names)
    colour = {tuple(line.get_ydata()): (line.get_color(), line.get_linestyle()) for line in lines}
    by_name = {n: colour[(0.25 * (1 + i), 0.75 * (1 + i))] for i, n in enumerate(names)}
    assert len({by_name[n][0] for n in losses}) == 11
    for n in losses[:6]:
        assert by_name[f"{n} (per image)"][0] == by_name[n][0]
        assert by_name[f"{n} (per image)"][1] != by_name[n][1]


def test_a_damaged_stored_table_raises_instead_of_turning_into_nans(tmp_path):
    folder = tmp_path / "cpu" / "shootout"
    folder.mkdir(parents=True)
    good = {"run": "r", "loss": "bce", "seed": 0, "split": "test", "step": 10, "metric": "miou_d"}
    pd.DataFrame([good | {"value": 0.5}, good | {"metric": "ap", "value": ""}]).to_csv(
        folder / "r.csv", index=False
    )
    (folder / "r.json").write_text("{}")
    table, _ = reporting.stored_study("shootout", "cpu", tmp_path)  # an empty cell is a missing value
    assert table["value"].iloc[0] == 0.5 and math.isnan(table["value"].iloc[1])
    pd.DataFrame([good | {"value": "shootout"}]).to_csv(folder / "r.csv", index=False)
    with pytest.raises(
        ValueError, match=r"r\.csv: column 'value' holds 1 non-numeric cells, e\.g\. \['shootout'\]"
    ):
        reporting.stored_study("shootout", "cpu", tmp_path)
