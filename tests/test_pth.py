"""The torch-free .pth reader against files written by torch.save (tests/fixtures/pth)."""
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from resshift_jax.convert.pth import CheckpointError, load_state_dict

PTH = pathlib.Path(__file__).parent / "fixtures" / "pth"


@pytest.mark.parametrize("name", ["plain_zip", "plain_legacy", "wrapped_compiled", "ddp"])
def test_reads_every_layout_torch_writes(name):
    expected = np.load(PTH / "expected.npz")
    got = load_state_dict(PTH / f"{name}.pth")
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        value = got[key].astype(np.float32) if got[key].dtype.name == "bfloat16" else got[key]
        assert value.shape == expected[key].shape, key
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    assert got["half"].dtype == np.float16 and got["idx"].dtype == np.int64


def test_parity_checkpoints_load_with_prefixes_stripped(parity_dir):
    sd = load_state_dict(parity_dir / "unet_sr_tiny.pth")  # saved with a `module.` prefix
    assert "time_embed.0.weight" in sd and not any(k.startswith("module.") for k in sd)
    assert sd["input_blocks.0.0.weight"].dtype == np.float32


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_state_dict(text)
    with pytest.raises(CheckpointError, match="no such file"):
        load_state_dict(tmp_path / "missing.pth")
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "x")
    with pytest.raises(CheckpointError, match="data.pkl"):
        load_state_dict(archive)


def test_arbitrary_code_in_a_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    archive = tmp_path / "evil.pth"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"unsupported object .*print"):
        load_state_dict(archive)
