"""Scoring a folder: pair, group by size, batch, score every metric, collect per-image rows.

Images of one size are read and scored together (`batch_size` at a time), so each metric
sees equally sized batches; a file that cannot be used is reported by name and skipped.
"""
import collections
import csv
import dataclasses
import json
import math
from typing import Iterable, Optional

import numpy as np
from tqdm import tqdm

from resshift_jax.image_io import ImageReadError
from resshift_jax.iqa.pairing import Pair, image_size, pair_files, read_pair
from resshift_jax.iqa.registry import Metric


@dataclasses.dataclass
class Report:
    metrics: list                                   # metric names, in order
    rows: list = dataclasses.field(default_factory=list)      # {"name": ..., metric: value}
    problems: list = dataclasses.field(default_factory=list)  # one line per skipped file

    def means(self) -> dict:
        """Mean per metric over the finite scores (inf PSNRs of identical pairs excluded);
        inf where every score is (all pairs identical), nan where none was scored."""
        out = {}
        for m in self.metrics:
            values = [r[m] for r in self.rows]
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                out[m] = float(np.mean(finite))
            else:
                out[m] = math.inf if math.inf in values else math.nan
        return out


def _groups(pairs: Iterable[Pair], batch_size: int):
    """Batches of pairs whose restored images have the same size (header-read)."""
    by_size = collections.defaultdict(list)
    for pair in pairs:
        by_size[image_size(pair.pred)].append(pair)
    for _, group in sorted(by_size.items(), key=lambda kv: (kv[0] is None, kv[0] or (0, 0))):
        for start in range(0, len(group), batch_size):
            yield group[start:start + batch_size]


def score_pairs(pairs: list, metrics: list[Metric], batch_size: int = 8,
                progress: bool = True) -> Report:
    report = Report([m.name for m in metrics])
    with tqdm(total=len(pairs), unit="img", disable=not progress) as bar:
        for batch in _groups(pairs, batch_size):
            loaded = []
            for pair in batch:
                try:
                    loaded.append((pair, *read_pair(pair)))
                except ImageReadError as err:
                    report.problems.append(f"{err}; skipped")
            by_shape = collections.defaultdict(list)   # a header may have lied about the size
            for item in loaded:
                by_shape[item[1].shape].append(item)
            for items in by_shape.values():
                preds = [p for _, p, _ in items]
                gts = [g for _, _, g in items]
                scores = {}
                for m in metrics:
                    try:
                        scores[m.name] = m.score(preds, gts)
                    except ValueError as err:  # a size the metric cannot score: NaN, named
                        scores[m.name] = np.full(len(items), np.nan)
                        report.problems += [f"{pair.name}: {m.name}: {err}" for pair, _, _ in items]
                        continue
                    report.problems += [  # e.g. CLIP's 32x reduction of a too small image
                        f"{pair.name}: {m.name}: no score (NaN) for a {p.shape[1]}x{p.shape[0]} "
                        "image: too small for it, or --crop_border leaves too little"
                        for (pair, p, _), v in zip(items, scores[m.name]) if math.isnan(v)]
                for i, (pair, _, _) in enumerate(items):
                    report.rows.append({"name": pair.name,
                                        **{n: float(s[i]) for n, s in scores.items()}})
            bar.update(len(batch))
    report.rows.sort(key=lambda r: r["name"])
    return report


def evaluate_folders(pred_dir, gt_dir: Optional[str], metrics: list[Metric], batch_size: int = 8,
                     progress: bool = True) -> Report:
    pairs, problems = pair_files(pred_dir, gt_dir)
    report = score_pairs(pairs, metrics, batch_size, progress)
    report.problems = problems + report.problems
    return report


def format_table(report: Report) -> str:
    """One row of means; a metric whose mean is over fewer images than the row count (NaN
    scores, or identical pairs' infinite PSNR) says over how many."""
    means = report.means()
    names = []
    for m in report.metrics:
        scored = sum(math.isfinite(r[m]) for r in report.rows)
        names.append(m if scored == len(report.rows) else f"{m} (of {scored})")
    head = "| images | " + " | ".join(names) + " |"
    rule = "|---|" + "---|" * len(report.metrics)
    body = f"| {len(report.rows)} | " + " | ".join(f"{means[m]:.4f}" for m in report.metrics) + " |"
    return "\n".join([head, rule, body])


def write_csv(report: Report, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["name"] + report.metrics)
        writer.writeheader()
        writer.writerows(report.rows)


def _json_number(value: float):
    """A finite score as is; inf, -inf and nan as those strings (JSON has no such numbers)."""
    return value if math.isfinite(value) else str(value)


def write_json(report: Report, path) -> None:
    means = {m: _json_number(v) for m, v in report.means().items()}
    rows = [{k: v if k == "name" else _json_number(v) for k, v in r.items()} for r in report.rows]
    payload = {"metrics": report.metrics, "means": means, "images": rows,
               "problems": report.problems}
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, allow_nan=False)
