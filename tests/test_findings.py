"""iou_lib.findings and tools/make_readme_results.py: the prose about results is generated from the stored
tables, is current in the README, and changes when a stored table changes."""

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from iou_lib import findings, reporting

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "make_readme_results", ROOT / "tools" / "make_readme_results.py"
)
make_readme = importlib.util.module_from_spec(spec)
sys.modules["make_readme_results"] = make_readme
spec.loader.exec_module(make_readme)


def test_readme_results_section_is_current():
    assert make_readme.main(["--check"]) == 0, "run: python tools/make_readme_results.py"


def test_replace_section_keeps_the_rest_and_needs_the_markers():
    text = f"intro\n{make_readme.START}\nold\n{make_readme.END}\nrest\n"
    assert (
        make_readme.replace_section(text, "new\n")
        == f"intro\n{make_readme.START}\nnew\n{make_readme.END}\nrest\n"
    )
    with pytest.raises(ValueError, match="needs exactly one"):
        make_readme.replace_section("no markers", "x")


def paired_table(soft, bce, frac=0.01):
    rows = []
    for loss, values in (("soft_iou", soft), ("bce", bce)):
        for seed, v in enumerate(values):
            rows.append(
                {
                    "run": f"{loss}{seed}",
                    "loss": loss,
                    "seed": seed,
                    "fg_frac": frac,
                    "split": "test",
                    "step": 100,
                    "metric": "miou_d",
                    "value": v,
                }
            )
    return pd.DataFrame(rows)


def test_primary_sentence_follows_the_interval():
    win = findings.primary_sentence(paired_table([0.5, 0.52, 0.55, 0.5, 0.51], [0.4, 0.43, 0.44, 0.41, 0.42]))
    assert "soft IoU beats BCE by 9.6 points" in win and "(5 paired seeds)" in win
    tie = findings.primary_sentence(paired_table([0.5, 0.3, 0.55], [0.4, 0.45, 0.44]))
    assert "no clear difference between soft IoU and BCE" in tie
    assert "no paired runs" in findings.primary_sentence(paired_table([0.5], [0.4], frac=0.02))


def test_contrasts_holm_corrects_the_secondary_ones_only():
    t = pd.concat([paired_table([0.5, 0.52, 0.55], [0.4, 0.43, 0.44], f) for f in (0.01, 0.02, 0.05)])
    c = findings.contrasts(t, baselines=["bce"], metrics=["miou_d"])
    assert c["primary"].sum() == 1
    prim = c[c["primary"]].iloc[0]
    assert prim["fg_frac"] == 0.01
    assert prim["p_holm"] == prim["p"]  # the pre-declared contrast is not corrected
    sec = c[~c["primary"]]
    assert (sec["p_holm"] >= sec["p"]).all() and (sec["p_holm"] == (2 * sec["p"]).clip(upper=1)).all()


def test_in_words_lists_the_intervals_that_exclude_0_and_marks_those_that_hold_after_holm():
    c = pd.DataFrame(
        {
            "sentence": ["primary wins", "holds", "uncorrected only", "unclear"],
            "low": [1.0, -5.0, 0.5, -1.0],
            "high": [3.0, -2.0, 4.0, 1.0],
            "primary": [True, False, False, False],
            "p_holm": [float("nan"), 0.01, 0.3, 1.0],
        }
    )
    lines = findings.in_words(c)
    bullets = [line for line in lines if line.startswith("- ")]
    assert bullets == ["- primary wins — primary", "- holds — holds after Holm", "- uncorrected only"]
    assert lines[-1].endswith("2 of the 3 stay significant at the 5 % level (marked).")
    assert findings.in_words(c.iloc[3:]) == [
        "No interval excludes 0: no clear difference at this number of seeds."
    ]


def test_convergence_sentence_names_classes_and_curves_that_still_fall():
    rows = [
        {"run": f"{loss}{seed}", "loss": loss, "class_name": "car", "split": "val", "metric": "miou_d"}
        | {"step": t, "value": 0.5 + slope * t}
        for loss, slope in (("bce", 0.0), ("soft_iou", -0.01))
        for seed in (0, 1)
        for t in range(10)
    ]
    text = findings.convergence_sentence(pd.DataFrame(rows), "class_name")
    assert text.startswith("1 of 2 (class, loss) cells plateaued")
    assert text.endswith("Still changing: soft IoU at Car (-0.020).")


def test_calibration_sentences_name_the_lower_ece_the_winner():
    """ECE is lower-is-better: a loss with the higher ECE is the worse calibrated one, whatever the sign."""
    t = paired_table([0.05, 0.06, 0.055, 0.05, 0.052], [0.01, 0.012, 0.011, 0.01, 0.013]).assign(metric="ece")
    (sentence,) = findings.contrasts(t, baselines=["bce"], metrics=["ece"])["sentence"]
    assert "BCE is better calibrated than soft IoU by 4.2 points" in sentence
    assert sentence.startswith("at 1 % foreground, calibration error (ECE):")


def test_rerun_agreement_pairs_runs_by_id_and_counts_flips():
    first = paired_table([0.5, 0.0, 0.4], [0.3, 0.3, 0.3])
    again = paired_table([0.52, 0.35, 0.4], [0.3, 0.3, 0.3])
    frame, sentences = findings.rerun_agreement(again, first)
    soft = frame.set_index("loss").loc["soft_iou"]
    assert soft["pairs"] == 3 and soft["flips"] == 1
    assert soft["mean_abs"] == pytest.approx((0.02 + 0.35 + 0.0) / 3)
    assert soft["max_abs"] == pytest.approx(0.35)
    assert sentences[0] == (
        "soft IoU: trained twice, 3 seeds differ by 12.3 points on average and by at most 35.0; "
        "in 1 of them one training stayed at 0 and the other did not"
    )
    assert frame.set_index("loss").loc["bce", "mean_abs"] == 0


def test_replacing_a_stored_table_changes_the_prose(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for f in (ROOT / "data" / "results").glob("*_cpu.*"):  # the first grid's tables
        shutil.copy(f, results)
    before = findings.readme_section("cpu", results)
    table = pd.read_csv(results / "synthetic_cpu.csv", keep_default_na=False)
    swap = {"soft_iou": "bce", "bce": "soft_iou"}  # exchange the two losses of the primary contrast
    table["loss"] = table["loss"].map(lambda x: swap.get(x, x))
    table.to_csv(results / "synthetic_cpu.csv", index=False)
    after = findings.readme_section("cpu", results)
    assert before != after
    lines = [text.split("Primary contrast")[1].split("\n")[0] for text in (before, after)]
    numbers = [re.findall(r"[+-]?\d+\.\d", line)[-3:] for line in lines]
    if "no clear difference" in lines[0]:  # "+17.8 points [-20.5, +56.0]" -> "-17.8 points [-56.0, +20.5]"
        (m0, lo0, hi0), (m1, lo1, hi1) = ([float(x) for x in n] for n in numbers)
        assert (m1, lo1, hi1) == (-m0, -hi0, -lo0)
    else:  # the same numbers, the other winner
        swapped = lines[0].replace("BCE", "X").replace("soft IoU", "BCE").replace("X", "soft IoU")
        assert numbers[0] == numbers[1] and swapped == lines[1]


def write_grid_run(folder, loss, seed, value):
    run = f"fg0.01_{loss}_lr0.003_s{seed}"
    rows = [
        {
            "run": run,
            "data": "synthetic",
            "fg_frac": 0.01,
            "class_name": "",
            "loss": loss,
            "model": "unet",
            "seed": seed,
            "split": split,
            "step": step,
            "metric": "miou_d",
            "value": v,
            "study": "primary",
            "variant": loss,
            "per_image": False,
            "lr": 0.003,
            "profile": "cpu",
        }
        for split, step, v in (("val", 10, value / 2), ("val", 20, value), ("test", 20, value))
    ]
    pd.DataFrame(rows).to_csv(folder / f"{run}.csv", index=False)
    record = {
        "git_commit": "0123456789ab",
        "clean_tree": True,
        "device": "cpu",
        "wall_s": 1.0,
        "note": "tiny",
    }
    (folder / f"{run}.json").write_text(__import__("json").dumps(record))


def test_findings_switch_to_the_converged_grid_only_when_the_primary_contrast_is_complete(tmp_path):
    for f in (ROOT / "data" / "results").glob("*_cpu.*"):
        shutil.copy(f, tmp_path)
    folder = tmp_path / "cpu" / "primary"
    folder.mkdir(parents=True)
    for seed in range(findings.MIN_SEEDS["synthetic"] - 1):
        write_grid_run(folder, "soft_iou", seed, 0.5 + 0.01 * seed)
        write_grid_run(folder, "bce", seed, 0.3)
    assert (
        findings.synthetic_source("cpu", tmp_path).kind == "first"
    )  # a partial grid never replaces the prose
    last = findings.MIN_SEEDS["synthetic"] - 1
    write_grid_run(folder, "soft_iou", last, 0.5)
    write_grid_run(folder, "bce", last, 0.3)
    # the primary study alone does not replace the first grid's tables, but its sentence is reported
    assert findings.synthetic_source("cpu", tmp_path).kind == "first"
    converged = findings.converged_primary("cpu", tmp_path)
    assert "soft IoU beats BCE by" in converged and "(5 paired seeds)" in converged
    assert f"Converged grid, primary contrast:** {converged}" in findings.readme_section("cpu", tmp_path)


def _lr_rows(variant: str, lr: float, curve: list[float], best_step: int) -> list[dict]:
    run = f"{variant}_lr{lr:g}"
    rows = [
        {
            "run": run,
            "variant": variant,
            "lr": lr,
            "split": "val",
            "step": 10 * (i + 1),
            "metric": "miou_d@tuned",
            "value": v,
        }
        for i, v in enumerate(curve)
    ]
    return rows + [
        {
            "run": run,
            "variant": variant,
            "lr": lr,
            "split": "summary",
            "step": 30,
            "metric": "best_step",
            "value": best_step,
        }
    ]


def test_lr_choices_read_the_best_step_and_flag_the_grid_edge():
    rows = []
    # a: best at 0.01 (its curve at the best step, not the last one, decides), inside the grid
    rows += _lr_rows("a", 0.003, [0.1, 0.2, 0.3], 30)
    rows += _lr_rows("a", 0.01, [0.1, 0.5, 0.2], 20)
    rows += _lr_rows("a", 0.03, [0.1, 0.2, 0.4], 30)
    # b: a tie between 0.01 and 0.03 goes to the smaller; c: best at the top of the grid
    rows += _lr_rows("b", 0.003, [0.1, 0.1, 0.1], 10) + _lr_rows("b", 0.01, [0.3, 0.2, 0.2], 10)
    rows += _lr_rows("b", 0.03, [0.3, 0.3, 0.3], 10)
    rows += _lr_rows("c", 0.003, [0.1, 0.1, 0.1], 10) + _lr_rows("c", 0.01, [0.2, 0.2, 0.2], 10)
    rows += _lr_rows("c", 0.03, [0.3, 0.3, 0.3], 10)
    rows += _lr_rows("d", 0.003, [0.1, 0.1, 0.1], 10)  # search not complete
    wide, text = findings.lr_choices(pd.DataFrame(rows))
    got = wide.set_index("variant")
    assert got.loc["a", 0.01] == 0.5 and got.loc["a", "chosen"] == 0.01 and not got.loc["a", "on_edge"]
    assert got.loc["b", "chosen"] == 0.01 and got.loc["c", "chosen"] == 0.03 and got.loc["c", "on_edge"]
    assert "for 3 losses" in text and "on the edge of the grid for c" in text
    assert "1 searches are not complete yet" in text


CAMVID_PLAN = {
    "camvid_classes": ["car", "pedestrian", "bicyclist", "signsymbol", "pole"],
    "camvid_binary": ["bce", "soft_iou", "bce:10,soft_iou"],
    "camvid_multi": ["cross_entropy", "lovasz_softmax", "cross_entropy:10,lovasz_softmax"],
}


def _camvid_grid(results, first: pd.DataFrame, study: str, seeds: int) -> None:
    """Store the first grid's CamVid runs of ``first`` as a converged-grid ``study`` with ``seeds`` seeds
    (extra seeds copy seed 0, shifted by 0.01 per seed), one csv + json per run as make_results writes,
    the json recording the plan (which classes and losses make the grid complete); adds to what is
    stored."""
    folder = results / "cpu" / study
    folder.mkdir(parents=True, exist_ok=True)
    base = first[first["seed"] == first["seed"].min()]
    for seed in range(seeds):
        runs = first[first["seed"] == seed] if seed in set(first["seed"]) else base.assign(seed=seed)
        if seed not in set(first["seed"]):
            runs = runs.assign(value=runs["value"] + 0.01 * seed)
        for (cls, loss), rows in runs.groupby(["class_name", "loss"]):
            run = f"camvid-{cls or 'all'}_{loss}_s{seed}".replace(":", "-").replace(",", "-")
            rows = rows.rename(columns={"epoch": "step"}).assign(
                run=run, study=study, variant=loss, lr=0.003, profile="cpu"
            )
            rows.to_csv(folder / f"{run}.csv", index=False)
            record = {"git_commit": "0123456789ab", "clean_tree": True, "device": "cpu", "wall_s": 1.0}
            (folder / f"{run}.json").write_text(json.dumps({**record, "note": "test", "plan": CAMVID_PLAN}))


def test_camvid_findings_switch_to_the_converged_grid_once_every_class_has_its_seeds(tmp_path):
    """What notebook 08 and the README do with the stored CamVid grid once it is complete (the code path
    the partial grid of a session never reaches): the source switches, and the tables, the per-class
    sentences, the sign test and the 11-class contrasts are generated from it."""
    for f in (ROOT / "data" / "results").glob("*_cpu.*"):
        shutil.copy(f, tmp_path)
    first = pd.read_csv(tmp_path / "camvid_cpu.csv", keep_default_na=False)
    binary, multi = first[first["class_name"] != ""], first[first["class_name"] == ""]
    needed = findings.MIN_SEEDS["camvid"]
    _camvid_grid(tmp_path, binary[binary["class_name"] != "pole"], "camvid_binary", needed)
    assert findings.camvid_source("cpu", tmp_path).kind == "first"  # one class short: no switch
    _camvid_grid(tmp_path, binary[binary["class_name"] == "pole"], "camvid_binary", needed)
    source = findings.camvid_source("cpu", tmp_path)
    assert source.kind == "grid" and "converged 'cpu' CamVid grid" in source.label
    per_class, signs = findings.camvid_summary(source.table)
    assert set(per_class["n"]) == {needed} and len(per_class) == binary["class_name"].nunique()
    assert f"of {binary['class_name'].nunique() * needed} class x seed pairs" in signs
    for metric in ("miou_d", "miou_d@val_thr"):
        if (source.table["metric"] == metric).any():
            table = reporting.class_table(source.table, metric=metric)
            assert list(table.index)[-1] == "mean"
    section = findings.readme_section("cpu", tmp_path)
    assert f"from the {source.label}" in section and f"({needed}) |" in section
    header = next(line for line in section.splitlines() if line.startswith("| class |"))
    assert header.split(" | ")[1:] == [
        "soft IoU - BCE",
        "BCE (10) then soft IoU - BCE |",
    ]  # a column per loss
    _camvid_grid(tmp_path, multi[multi["loss"] != "lovasz_softmax"], "camvid_multi", needed)
    assert findings.camvid_multi_source("cpu", tmp_path).kind == "first"  # one loss short: no switch
    _camvid_grid(tmp_path, multi[multi["loss"] == "lovasz_softmax"], "camvid_multi", needed)
    source = findings.camvid_multi_source("cpu", tmp_path)
    assert source.kind == "grid"
    assert "mIoU" in reporting.class_table(source.table).index
    diffs = reporting.paired_differences(source.table, baseline="cross_entropy", by=())
    assert set(diffs.groupby("loss")["value"].count()) == {needed}
    sentences = findings.multiclass_sentences(source.table)
    assert len(sentences) == diffs["loss"].nunique() == 2
    assert all(s.startswith("mIoU: ") and s.endswith(f"({needed} paired seeds)") for s in sentences)
    section = findings.readme_section("cpu", tmp_path)
    assert f"**CamVid, one 11-class model**, from the {source.label}" in section
    assert all(f"- {s}" in section for s in sentences)


RESULT_SHAPES = {
    "a table row of numbers": re.compile(r"^\|.*\d\.\d"),
    "a signed difference": re.compile(r"(?<![\w.])[+-]\d+\.\d"),
    "an interval": re.compile(r"\[\s*[+-]?\d+\.\d+\s*,"),
}


@pytest.mark.parametrize("name", ["06_training_losses", "07_imbalance_sweep", "08_camvid"])
def test_the_prose_of_the_results_notebooks_types_no_result(name):
    """Results in notebooks 06-08 come from the stored tables: their markdown holds no typed-in table of
    numbers, signed difference or interval (code spans and maths, which name settings, are left out)."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    found = []
    for cell in (c for c in nb["cells"] if c["cell_type"] == "markdown"):
        for line in "".join(cell["source"]).splitlines():
            text = re.sub(r"`[^`]*`|\$[^$]*\$", "", line)
            found += [f"{shape}: {line}" for shape, pattern in RESULT_SHAPES.items() if pattern.search(text)]
    assert not found, "\n".join(found)
