"""`pip install .` installs the package with the dependencies of requirements.txt."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_pyproject_takes_requirements_txt_and_ships_the_configs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "configs" in include and "resshift_jax*" in include  # releases import configs.*
