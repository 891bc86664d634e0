"""Model artifacts in the blob store (app.learning.artifacts): a version saved by one replica is read by another that
shares only the blob store's URL; keys name one content; a tampered tar is refused; old paths still load."""

from __future__ import annotations

import io
import tarfile
import uuid

import numpy as np
import pytest

from app.learning.artifacts import ModelArtifacts
from generation.blobs import BlobStore


def _replica(url: str, root) -> ModelArtifacts:
    return ModelArtifacts(BlobStore(url, cache_dir=root / "blob-cache"), root / "model-cache")


def _write(files: dict[str, bytes]):
    def write(directory):
        for name, data in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(data)
    return write


def test_a_directory_saved_on_one_replica_is_read_on_another(tmp_path):
    url = f"memory://vitrine-artifacts-{uuid.uuid4().hex[:8]}"
    one, two = _replica(url, tmp_path / "one"), _replica(url, tmp_path / "two")
    files = {"params.json": b'{"model": "ease"}', "arrays.npz": bytes(range(256)) * 10, "sub/extra.txt": b"x"}
    key = one.save_dir("recommender", "ease", 3, _write(files))
    assert key.startswith("registry/recommender/ease/v3-") and key.endswith(".tar")
    folder = two.directory(key)
    assert folder.is_relative_to(tmp_path / "two")
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert two.directory(key) == folder  # unpacked once
    # the same content gives the same key; other content under the same version number another one
    assert one.save_dir("recommender", "ease", 3, _write(files)) == key
    other = one.save_dir("recommender", "ease", 3, _write({**files, "params.json": b"{}"}))
    assert other != key and two.directory(other).joinpath("params.json").read_bytes() == b"{}"


def test_a_recommender_round_trips_through_a_remote_store(tmp_path):
    from recommenders.models import load_model
    from vitrine_app_fixtures import make_tiny_dataset
    from recommenders.training import train_model

    model = train_model(make_tiny_dataset(), "ease")
    url = f"memory://vitrine-artifacts-{uuid.uuid4().hex[:8]}"
    key = _replica(url, tmp_path / "one").save_dir("recommender", "ease", 1, model.save)
    loaded = load_model(_replica(url, tmp_path / "two").directory(key))
    assert loaded.recommend("5", 5)[0] == model.recommend("5", 5)[0]


def test_a_file_artifact_and_missing_ones(tmp_path):
    url = f"memory://vitrine-artifacts-{uuid.uuid4().hex[:8]}"
    one, two = _replica(url, tmp_path / "one"), _replica(url, tmp_path / "two")

    def save(path):
        np.savez(path, w=np.arange(4.0))
        return path

    key = one.save_file("preference", "reward", 2, ".npz", save)
    assert key.startswith("registry/preference/reward/v2-") and key.endswith(".npz")
    with np.load(two.file(key)) as data:
        assert data["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(LookupError, match="not in the blob store"):
        two.file("registry/preference/reward/v9-0000000000000000.npz")
    with pytest.raises(LookupError, match="no legacy directory"):
        two.directory("ease/v1")
    with pytest.raises(ValueError, match="version"):
        one.save_file("preference", "reward", 0, ".npz", save)
    with pytest.raises(ValueError, match="write"):
        one.save_dir("recommender", "ease", 1, lambda directory: None)  # wrote nothing


def test_a_tar_holding_anything_but_plain_files_is_refused(tmp_path):
    artifacts = ModelArtifacts.at(tmp_path / "blobs")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("params.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    key = artifacts.blobs.put("registry/recommender/ease/v1-0000000000000000.tar", buf.getvalue())
    with pytest.raises(ValueError, match="not a plain file"):
        artifacts.directory(key)
    assert not (tmp_path / "blobs" / ".unpacked" / "registry" / "recommender" / "ease" / "v1-0000000000000000").exists()


def test_a_directory_is_a_local_store_that_still_reads_old_paths(tmp_path):
    old = tmp_path / "registry" / "ease" / "v1"
    old.mkdir(parents=True)
    (old / "params.json").write_text("{}")
    artifacts = ModelArtifacts.at(tmp_path / "registry")
    assert artifacts.directory("ease/v1") == old  # a version registered before the blob store held artifacts
    key = artifacts.save_dir("recommender", "ease", 2, _write({"params.json": b"{}"}))
    assert (tmp_path / "registry" / key).is_file()
    with pytest.raises(ValueError, match="artifacts"):
        ModelArtifacts.at(42)
