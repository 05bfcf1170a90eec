"""Profiles, device choice and data location (iou_lib.config)."""

from pathlib import Path

import pytest
import torch

from iou_lib import config


def test_profile_from_argument_env_and_autodetect(monkeypatch):
    monkeypatch.setenv("IOU_PROFILE", "fast")
    assert config.get_profile().name == "fast"
    assert config.get_profile("gpu").name == "gpu"
    monkeypatch.delenv("IOU_PROFILE")
    assert config.get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_profiles_grow_and_are_frozen():
    fast, cpu, gpu = (config.get_profile(n) for n in ("fast", "cpu", "gpu"))
    steps = [p.steps for p in (fast, cpu, gpu)]
    assert 100 <= steps[0] <= 300 and steps[0] < steps[1] < steps[2]  # budgets in optimizer steps
    assert all(p.camvid_steps >= 100 for p in (fast, cpu, gpu)) and fast.camvid_steps <= cpu.camvid_steps
    assert fast.epochs * fast.steps_per_epoch >= fast.steps
    assert fast.image_size <= cpu.image_size <= gpu.image_size
    with pytest.raises(AttributeError):
        fast.steps = 3  # frozen dataclass


def test_unknown_profile_names_choices(monkeypatch):
    monkeypatch.setenv("IOU_PROFILE", "huge")
    with pytest.raises(ValueError, match="unknown profile 'huge'.*fast, cpu, gpu"):
        config.get_profile()


def test_default_device_is_available():
    dev = config.default_device()
    torch.zeros(1, device=dev)
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)


def test_data_dir_argument_then_env(monkeypatch, tmp_path):
    monkeypatch.delenv("IOU_DATA_DIR", raising=False)
    assert config.data_dir() is None
    monkeypatch.setenv("IOU_DATA_DIR", str(tmp_path))
    assert config.data_dir() == tmp_path
    assert config.data_dir("~/x") == Path.home() / "x"
    with pytest.raises(TypeError, match="data path"):
        config.data_dir(3)
