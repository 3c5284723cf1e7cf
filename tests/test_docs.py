"""The docs' links resolve and the flags their commands use exist."""
import collections
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(markdown: str) -> set:
    """GitHub's anchors for a file's headings: lowercased, punctuation but '-' and '_'
    dropped, spaces to '-', repeats suffixed -1, -2, ..."""
    seen = collections.Counter()
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} (.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
            seen[slug] += 1
    return anchors


def test_heading_anchors_follow_github():
    text = "# A b\n## Evaluation — `python -m x.y --a /b/c`\n## A b\n```\n# not a heading\n```\n"
    assert heading_anchors(text) == {"a-b", "evaluation--python--m-xy---a-bc", "a-b-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT)}")
        elif anchor and anchor not in heading_anchors(file.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


# each command the docs show: how the docs name it, how to ask it for its flags
COMMANDS = {
    "sample.py": ["sample.py", "--helpfull"],
    "train.py": ["train.py", "--helpfull"],
    "app.py": ["app.py", "--help"],
    "folder_bench.py": ["bench/folder_bench.py", "--help"],
    **{f"-m {module}": ["-m", module, "--help"] for module in (
        "resshift_jax.parity", "resshift_jax.evaluate", "resshift_jax.export",
        "resshift_jax.convert", "resshift_jax.data.make_testset", "bench.device_suite",
        "bench.sample_bench", "bench.pod_compile", "bench.eval_bench", "bench.data_bench")},
}


def documented_flags(command: str) -> dict:
    """Flags given to `command` in the docs (from its name to the end of that command line)
    and, for sample.py, in the README's option table: {flag: first doc line}."""
    flags = {}
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            uses = [m.group(1) for m in re.finditer(
                rf"(?:^|[\s/`]){re.escape(command)}\b([^`|;#]*?)(?=&&|[`|;]| #|$)", line)]
            if command == "sample.py" and doc == ROOT / "README.md" and line.startswith("| `-"):
                uses.append(line.split("|")[1])
            for use in uses:
                for flag in re.findall(r"(?<![\w-])--([a-z][a-z0-9_]*)", use):
                    flags.setdefault(flag, f"{doc.relative_to(ROOT)}:{number}")
    return flags


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_documented_flags_exist(command):
    help_text = subprocess.run([sys.executable, *COMMANDS[command]], cwd=ROOT, capture_output=True,
                               text=True, timeout=300).stdout
    defined = set(re.findall(r"^\s+(?:-\w[^,\n]*, )?--(?:\[no\])?(\w+)", help_text, re.M))
    flags = documented_flags(command)
    assert flags, f"the docs give {command} no flags: the scan is broken"
    unknown = {flag: where for flag, where in flags.items() if flag not in defined}
    assert not unknown, f"documented but not flags of {command}: {unknown}"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """README's "From Python" block, run on the tiny test model (its one released-config
    line swapped for the tiny config; everything else as printed)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"From Python.*?```python\n(.*?)```", readme, re.S).group(1)
    released = 'config = releases.release("realsr", "v3").get_config()'
    assert released in block
    block = block.replace(released, "from configs.tiny_test import get_config\n"
                                    "config = get_config()")
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 27, 3), np.uint8)).save(tmp_path / "lq.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert Image.open(tmp_path / "sr.png").size == (108, 80)
