"""Model resolution: local dir -> HF cache -> hub (only when allowed); missing models fail fast and clearly."""

from __future__ import annotations

import time

import huggingface_hub
import pytest

from generation.loading import ModelUnavailableError, resolve_model, select_device
from generation.testing import fake_hf_cache as fake_cache


@pytest.fixture
def no_hub(monkeypatch):
    """Record every snapshot_download call; any that may touch the network fails the test."""
    calls = []
    real = huggingface_hub.snapshot_download

    def guarded(repo_id, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        if not kwargs.get("local_files_only"):
            raise AssertionError(f"network download of {repo_id} attempted")
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", guarded)
    return calls


def test_missing_hub_model_fails_fast_with_where_and_how(tmp_path, no_hub):
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model("org/absent-model", "model_index.json", cache_dir=tmp_path, purpose="cover model")
    assert time.perf_counter() - start < 5.0
    msg = str(err.value)
    assert msg.startswith("cover model 'org/absent-model' is not available")
    assert str(tmp_path) in msg and "not cached" in msg  # where it looked
    assert "allow_network=False" in msg  # why the hub was skipped
    assert "hf download org/absent-model" in msg  # how to provide it
    assert err.value.model == "org/absent-model" and len(err.value.looked) == 3
    assert isinstance(err.value, LookupError)
    assert no_hub == [True]  # the cache was asked, offline only


def test_local_directory_comes_first(tmp_path, no_hub):
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    resolved = resolve_model(str(local))
    assert resolved.source == "local" and resolved.path == local.resolve()
    assert no_hub == []  # a local directory never consults the cache or the hub
    before = resolved.fingerprint
    time.sleep(0.01)
    (local / "model.safetensors").write_bytes(b"x")
    assert resolve_model(str(local)).fingerprint != before  # new files, new asset keys


def test_missing_or_incomplete_local_directory(tmp_path, no_hub):
    with pytest.raises(ModelUnavailableError, match="does not exist") as err:
        resolve_model(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="has no model_index.json"):
        resolve_model(str(tmp_path / "empty"), "model_index.json")
    assert no_hub == []


def test_hf_cache_is_second(tmp_path, no_hub):
    snapshot = fake_cache(tmp_path, "org/cached", {"config.json": "{}"})
    resolved = resolve_model("org/cached", cache_dir=tmp_path)
    assert resolved.source == "cache" and resolved.path == snapshot
    fake_cache(tmp_path / "other", "org/partial", {"README.md": "no config"})
    with pytest.raises(ModelUnavailableError, match="incomplete: no config.json"):
        resolve_model("org/partial", cache_dir=tmp_path / "other")


def test_hub_only_when_allowed(tmp_path, monkeypatch):
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    (downloaded / "config.json").write_text("{}")
    calls = []

    def fake_download(repo_id, **kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(downloaded)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    resolved = resolve_model("org/remote", allow_network=True, cache_dir=tmp_path)
    assert resolved.source == "hub" and resolved.path == downloaded
    assert [c.get("local_files_only", False) for c in calls] == [True, False]  # cache first, then hub

    def failing(repo_id, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(ModelUnavailableError, match="download failed: OSError: connection refused"):
        resolve_model("org/remote", allow_network=True, cache_dir=tmp_path)


def test_bad_model_names():
    for bad in ("", "   ", None, 3):
        with pytest.raises(ValueError, match="must be a hub id"):
            resolve_model(bad)  # type: ignore[arg-type]


def test_device_choice():
    import torch

    device, dtype = select_device("auto")
    if torch.cuda.is_available():
        assert (device, dtype) == ("cuda", torch.float16)
    else:
        assert (device, dtype) == ("cpu", torch.float32)
    assert select_device("cpu", "bfloat16") == ("cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="device must be"):
        select_device("gpu")
    with pytest.raises(ValueError, match="dtype must be"):
        select_device("cpu", "float8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="without CUDA"):
            select_device("cuda")


@pytest.fixture
def packaged(tmp_path, monkeypatch, tiny_lm_dir):
    """A hub id with a 'packaged' GGUF copy: a module folder holding a .gguf file, and a conversion that copies the
    tiny LM (the real conversion runs in tests/generation/test_gen_real_models.py); returns the conversions made."""
    import shutil

    import generation.gguf as gguf

    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported: only its files are read')\n")
    (package / "lm.Q4_0.gguf").write_bytes(b"GGUF fake bytes")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(gguf.PACKAGED_MODELS, "org/packaged-lm",
                        gguf.PackagedModel("org/packaged-lm", "fake-gguf-pkg", "fake_gguf_pkg", "lm.Q4_0.gguf", "Q4_0"))
    made = []

    def convert(path, root, sha=None):
        target = gguf.converted_path(path, root, sha)
        if not target.exists():
            shutil.copytree(tiny_lm_dir, target)
            made.append(target)
        return target

    monkeypatch.setattr(gguf, "convert_gguf", convert)
    return made


def test_a_packaged_gguf_copy_is_used_when_no_hub_copy_is_cached(tmp_path, no_hub, packaged):
    from generation.gguf import file_sha256

    resolved = resolve_model("org/packaged-lm", cache_dir=tmp_path / "hf", convert_dir=tmp_path / "converted")
    gguf_file = tmp_path / "site" / "fake_gguf_pkg" / "lm.Q4_0.gguf"
    assert resolved.source == "package" and resolved.fingerprint == "gguf-" + file_sha256(gguf_file)[:16]
    assert resolved.path.parent == tmp_path / "converted" and resolved.path.name.startswith("lm.Q4_0-")
    again = resolve_model("org/packaged-lm", cache_dir=tmp_path / "hf", convert_dir=tmp_path / "converted")
    assert again == resolved and len(packaged) == 1  # converted once, keyed by the file's hash
    assert no_hub == [True, True]  # the HF cache was asked first, offline


def test_a_cached_hub_copy_wins_over_the_packaged_one(tmp_path, no_hub, packaged, tiny_lm_dir):
    fake_cache(tmp_path / "hf", "org/packaged-lm", tiny_lm_dir)
    resolved = resolve_model("org/packaged-lm", cache_dir=tmp_path / "hf", convert_dir=tmp_path / "converted")
    assert resolved.source == "cache" and packaged == []


def test_a_gguf_file_can_be_named_directly(tmp_path, packaged):
    path = tmp_path / "site" / "fake_gguf_pkg" / "lm.Q4_0.gguf"
    resolved = resolve_model(str(path), convert_dir=tmp_path / "converted")
    assert resolved.source == "gguf" and resolved.fingerprint.startswith("gguf-")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_a_failed_conversion_is_a_clear_unavailable_error(tmp_path, monkeypatch, packaged):
    import generation.gguf as gguf

    def broken(path, root, sha=None):
        raise ImportError("Loading a GGUF checkpoint in PyTorch requires the gguf package")

    monkeypatch.setattr(gguf, "convert_gguf", broken)
    with pytest.raises(ModelUnavailableError, match="conversion to .* failed: ImportError: Loading a GGUF"):
        resolve_model("org/packaged-lm", cache_dir=tmp_path / "hf", convert_dir=tmp_path / "converted")
