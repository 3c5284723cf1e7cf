"""Checkpoint registry and download (with a local file:// URL; no network)."""
import hashlib
import zipfile

import pytest

from resshift_jax.download import SHA256, WeightsError, ensure_weights
from resshift_jax.releases import CHECKPOINTS

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB: several read chunks


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "remote" / "model.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def test_registry_matches_reference_names():
    assert CHECKPOINTS["v3"].filename == "resshift_realsrx4_s4_v3.pth"
    assert CHECKPOINTS["bicsr"].filename == "resshift_bicsrx4_s4.pth"
    assert CHECKPOINTS["inpaint_face"].filename == "resshift_inpaint_face_s4.pth"
    assert CHECKPOINTS["inpaint_face"].url.endswith("/resshift_inpainting_face_s4.pth")
    assert CHECKPOINTS["vqgan_face512"].filename == "ffhq512_vq_f8_dim8_face.pth"
    assert CHECKPOINTS["sinsr_v1"].filename == "SinSR_v1.pth"
    for name, ckpt in CHECKPOINTS.items():
        release = ("wyf0912/SinSR/releases/download/v1.0/" if name.startswith("sinsr")
                   else "zsyOAOA/ResShift/releases/download/v2.0/")
        assert ckpt.url.startswith(f"https://github.com/{release}")
    assert set(SHA256) == set(CHECKPOINTS)


def test_download_and_verify(tmp_path, source):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    wdir = tmp_path / "weights"
    got = ensure_weights("v3", wdir, url=source.as_uri(), sha256=digest, progress=False)
    assert got == wdir / "resshift_realsrx4_s4_v3.pth"
    assert got.read_bytes() == PAYLOAD
    assert sorted(p.name for p in wdir.iterdir()) == [got.name]  # no temp file left


def test_existing_file_is_used_without_downloading(tmp_path):
    wdir = tmp_path / "w"
    wdir.mkdir()
    (wdir / "autoencoder_vq_f4.pth").write_bytes(b"local")
    got = ensure_weights("vqgan", wdir, url="file:///nonexistent/never", progress=False)
    assert got.read_bytes() == b"local"


def test_wrong_sha256_fails_and_leaves_nothing(tmp_path, source):
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError, match="resshift_bicsrx4_s4.pth: sha256 mismatch"):
        ensure_weights("bicsr", wdir, url=source.as_uri(), sha256="0" * 64, progress=False)
    assert list(wdir.iterdir()) == []


def test_unreachable_url_says_what_to_put_where(tmp_path):
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError) as err:
        ensure_weights("v1", wdir, url=(tmp_path / "absent.pth").as_uri(), progress=False)
    message = str(err.value)
    assert "resshift_realsrx4_s15_v1.pth" in message
    assert str(wdir / "resshift_realsrx4_s15_v1.pth") in message
    assert list(wdir.iterdir()) == []


def test_custom_file_name_needs_url(tmp_path, source):
    got = ensure_weights("mine.pth", tmp_path / "w", url=source.as_uri(), progress=False)
    assert got.name == "mine.pth" and got.read_bytes() == PAYLOAD
    with pytest.raises(WeightsError, match="unknown checkpoint"):
        ensure_weights("mine2.pth", tmp_path / "w")
    with pytest.raises(WeightsError, match="unknown checkpoint"):
        ensure_weights("../escape.pth", tmp_path / "w", url=source.as_uri())


def _torch_like_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", PAYLOAD)
    return path


def test_released_file_without_known_hash_is_checked_and_its_digest_recorded(tmp_path):
    remote = _torch_like_zip(tmp_path / "remote.pth")
    wdir = tmp_path / "weights"
    got = ensure_weights("v3", wdir, url=remote.as_uri(), progress=False)
    digest = hashlib.sha256(remote.read_bytes()).hexdigest()
    assert got.read_bytes() == remote.read_bytes()
    record = wdir / "resshift_realsrx4_s4_v3.pth.sha256"
    assert record.read_text() == f"{digest}  resshift_realsrx4_s4_v3.pth\n"


def test_truncated_released_file_is_refused_and_leaves_nothing(tmp_path):
    remote = _torch_like_zip(tmp_path / "remote.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(remote.read_bytes()[:-200])
    wdir = tmp_path / "weights"
    with pytest.raises(WeightsError, match="resshift_realsrx4_s4_v3.pth: the download from .* "
                                           "is not a complete PyTorch checkpoint"):
        ensure_weights("v3", wdir, url=truncated.as_uri(), progress=False)
    assert list(wdir.iterdir()) == []


def test_a_users_checksum_file_is_checked_never_replaced(tmp_path):
    """A `FILE.sha256` beside the file to download is what the download must match."""
    remote = _torch_like_zip(tmp_path / "remote.pth")
    wdir = tmp_path / "weights"
    wdir.mkdir()
    record = wdir / "resshift_realsrx4_s4_v3.pth.sha256"
    mine = f"{'0' * 64}  resshift_realsrx4_s4_v3.pth   # the author's\n"
    record.write_text(mine)
    with pytest.raises(WeightsError, match=f"sha256 mismatch \\({record} 0+, got"):
        ensure_weights("v3", wdir, url=remote.as_uri(), progress=False)
    assert record.read_text() == mine and sorted(wdir.iterdir()) == [record]
    good = f"{hashlib.sha256(remote.read_bytes()).hexdigest()}  resshift_realsrx4_s4_v3.pth\n"
    record.write_text(good)
    assert ensure_weights("v3", wdir, url=remote.as_uri(), progress=False).is_file()
    assert record.read_text() == good
    record.unlink()
    (wdir / "resshift_realsrx4_s4_v3.pth").unlink()
    record.write_text("not a digest\n")
    with pytest.raises(WeightsError, match="not a sha256 checksum file"):
        ensure_weights("v3", wdir, url=remote.as_uri(), progress=False)


def test_weights_dir_that_is_a_file_is_one_weights_error(tmp_path, source):
    (tmp_path / "w").write_text("a file")
    with pytest.raises(WeightsError, match="cannot write into --weights_dir"):
        ensure_weights("v3", tmp_path / "w", url=source.as_uri(), progress=False)


def test_a_cut_connection_is_one_weights_error(tmp_path, monkeypatch):
    """http.client's errors (a chunked reply cut short, a reply that is not HTTP) are none of
    URLError/OSError/ValueError."""
    import http.client
    import urllib.request

    def cut(*args, **kwargs):
        raise http.client.IncompleteRead(b"partial", 100)
    monkeypatch.setattr(urllib.request, "urlopen", cut)
    with pytest.raises(WeightsError, match="could not download .*download it by hand"):
        ensure_weights("v3", tmp_path / "w", url="https://example.invalid/x.pth", progress=False)
    assert list((tmp_path / "w").iterdir()) == []
