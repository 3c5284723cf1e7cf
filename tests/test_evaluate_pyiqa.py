"""Our LPIPS-AlexNet and CLIP-IQA against pyiqa itself (tools/make_pyiqa_fixtures.py: real
photo crops, random weights from tests/pyiqa_weights.py or the tiny TorchScript CLIP)."""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resshift_jax.convert.clip import load_clipiqa
from resshift_jax.convert.lpips import lpips_params_from_torch, split_pyiqa_state_dict
from resshift_jax.convert.pth import CheckpointError
from resshift_jax.convert.torchscript import load_torchscript
from resshift_jax.models.clip import prompt_tokens
from resshift_jax.models.lpips import LPIPS
from tests.pyiqa_weights import random_state_dict

FIXTURES = Path(__file__).parent / "fixtures" / "pyiqa"


def _fixture(name):
    return np.load(FIXTURES / name)   # missing -> FileNotFoundError: fails, never skips


def _unit(images):
    return jnp.asarray(images.astype(np.float32) / 255.0)


def _rel(ours, ref):
    return float(np.max(np.abs(np.asarray(ours, np.float64) - ref) / np.abs(ref)))


def test_lpips_alex_matches_pyiqa():
    ref = _fixture("lpips_alex.npz")
    sd = random_state_dict(json.loads(str(ref["names_shapes"])), int(ref["seed"]))
    params = lpips_params_from_torch(*split_pyiqa_state_dict(sd), net="alex")
    d = jax.jit(LPIPS(net="alex").apply)({"params": params}, _unit(ref["pred"]) * 2 - 1,
                                         _unit(ref["gt"]) * 2 - 1)
    assert _rel(d, ref["score"]) < 1e-4


def test_clipiqa_matches_pyiqa_from_a_torchscript_archive():
    ref = _fixture("clipiqa.npz")
    np.testing.assert_array_equal(prompt_tokens(), ref["tokens"])
    model, params = load_clipiqa(FIXTURES / "clip_tiny.pt")
    score = jax.jit(model.apply)({"params": params}, _unit(ref["pred"]))
    assert _rel(score, ref["score"]) < 1e-4


def test_torchscript_reader_names_tensors_like_state_dict():
    sd = load_torchscript(FIXTURES / "clip_tiny.pt")
    assert sd["visual.layer1.0.conv1.weight"].shape == (8, 8, 1, 1)
    assert sd["transformer.resblocks.0.attn.in_proj_weight"].shape == (192, 64)
    assert "visual.bn1.running_var" in sd


def test_clip_file_problems_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="RN50.pt: no such file"):
        load_clipiqa(tmp_path / "RN50.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_clipiqa(bad)


def test_musiq_matches_pyiqa_at_three_sizes():
    from resshift_jax.convert.musiq import musiq_from_state_dict, musiq_scorer
    ref = _fixture("musiq.npz")
    sd = random_state_dict(json.loads(str(ref["names_shapes"])), int(ref["seed"]))
    score = musiq_scorer(*musiq_from_state_dict(sd))
    for i in range(3):
        assert _rel(score(ref[f"pred{i}"].astype(np.float32) / 255.0), ref[f"score{i}"]) < 1e-4, i


@pytest.mark.parametrize("key,y,crop", [("y", True, 0), ("rgb_crop4", False, 4)])
def test_psnr_ssim_pyiqa_definition_matches_pyiqa(key, y, crop):
    from resshift_jax.iqa.registry import build_metric
    ref = _fixture("fullref.npz")
    for name in ("psnr", "ssim"):
        metric = build_metric(name, y_channel=y, crop_border=crop, definition="pyiqa")
        for i in range(2):
            ours = metric.score(list(ref[f"pred{i}"]), list(ref[f"gt{i}"]))
            assert _rel(ours, ref[f"{name}_{key}{i}"]) < 1e-5, (name, i)
