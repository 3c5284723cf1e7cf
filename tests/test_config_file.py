"""A config file that is missing or broken is one line naming it, from every command line."""
import pathlib
import subprocess
import sys

import pytest

from resshift_jax import config_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
BROKEN = {  # file text -> what the one line says
    "raise RuntimeError('boom')\n": "line 1: loading it raised RuntimeError: boom",
    "def get_config(:\n": "loading it raised SyntaxError",
    "X = 1\n": "defines no get_config()",
    "def get_config():\n    return None\n": "get_config() returned NoneType, not a ConfigDict",
    "def get_config():\n    raise ValueError('bad\\nfield')\n":
        "line 2: get_config() raised ValueError: bad field",
}


@pytest.mark.parametrize("text", list(BROKEN))
def test_broken_file_is_one_line_naming_it(tmp_path, text):
    path = tmp_path / "cfg.py"
    path.write_text(text)
    with pytest.raises(config_file.ConfigError) as err:
        config_file.load(str(path))
    assert str(err.value).startswith(str(path)) and BROKEN[text] in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_the_argument_after_the_colon(tmp_path):
    with pytest.raises(config_file.ConfigError, match="nope.py: no such config file"):
        config_file.load(str(tmp_path / "nope.py"))
    with pytest.raises(config_file.ConfigError, match="is not a file"):
        config_file.load(str(tmp_path))
    config = config_file.load(str(ROOT / "configs/sinsr_v1.py") + ":realsr_v3")
    assert config.distill is not None


@pytest.mark.parametrize("cli", [["app.py"], ["sample.py", "-i", "x"], ["train.py", "--workdir", "w"],
                                 ["-m", "resshift_jax.data.make_testset", "--gt", "g", "--out", "o"]])
def test_every_cli_says_one_line_for_a_missing_config(tmp_path, cli):
    missing = str(tmp_path / "missing.py")
    proc = subprocess.run([sys.executable, *cli, "--config", missing], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr == f"error: {missing}: no such config file\n"


def test_override_of_a_field_the_config_lacks_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "--config", "configs/tiny_test.py",
                           "--workdir", str(tmp_path), "--config.train.nosuch=1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "error: --config.train.nosuch=1: the config has no such field ('nosuch')\n"


@pytest.mark.parametrize("args, says", [
    (["--config.train.lr=0"], "error: train.lr=0.0: must be positive\n"),
    (["--workdir", "{file}"], "error: {file}: the workdir is a file; give a folder\n"),
])
def test_train_refuses_unusable_settings_in_one_line_before_building(tmp_path, args, says):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    args = [a.format(file=file) for a in args]
    proc = subprocess.run([sys.executable, "train.py", "--config", "configs/tiny_test.py",
                           "--workdir", str(tmp_path / "w"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and proc.stderr == says.format(file=file)
    assert file.read_text() == "mine" and not (tmp_path / "w").exists()
