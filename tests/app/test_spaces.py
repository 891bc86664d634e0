"""Spaces done right: SPACE_ID turns network models on and puts data on /data (a temporary stand-in here), the
app warns when labels would not survive a restart, `python app/__main__.py` (the Gradio Space's entry point)
and `python -m app` both start, restore an empty store from the sink, and import `spaces` before torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from app.settings import REPO_ROOT, load_settings, mount_of, remote_storage
from vitrine_app_fixtures import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_space_with_persistent_storage(tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    s = load_settings({"SPACE_ID": "org/vitrine"}, data_root=data_root)
    assert s.space_id == "org/vitrine" and s.allow_network is True and s.host == "0.0.0.0"
    assert s.data_dir == (data_root / "vitrine").resolve()
    # the live SQLite file stays off the storage mount; committed records go there as Parquet shards
    assert not s.database_url.startswith(f"sqlite:///{data_root}") and s.db_is_sqlite
    assert s.sync_url == str((data_root / "vitrine" / "events").resolve())
    assert s.blob_location == str(s.data_dir / "blobs")
    assert s.durability_warning is None
    # explicit settings win
    s = load_settings({"SPACE_ID": "org/vitrine", "VITRINE_ALLOW_NETWORK": "0", "VITRINE_SYNC_URL": "s3://b/v",
                       "VITRINE_SYNC_EVERY": "120", "VITRINE_BLOB_URL": "s3://b/blobs"}, data_root=data_root)
    assert (s.allow_network, s.sync_url, s.sync_every, s.blob_location) == (False, "s3://b/v", 120, "s3://b/blobs")
    s = load_settings({"SPACE_ID": "org/vitrine", "DATABASE_URL": "postgresql+psycopg://db/v"}, data_root=data_root)
    assert s.sync_url is None and s.durability_warning is None and s.database_url_set


def test_space_without_storage_warns_unless_a_sink_or_external_db_is_set(tmp_path):
    missing = tmp_path / "no-data"
    s = load_settings({"SPACE_ID": "org/vitrine"}, data_root=missing)
    assert s.data_dir.name == ".vitrine" and s.sync_url is None and s.allow_network
    assert "VITRINE_SYNC_URL" in s.durability_warning and "DATABASE_URL" in s.durability_warning
    not_a_dir = tmp_path / "data-file"  # /data present but unusable (here a file; read-only works the same)
    not_a_dir.write_text("x")
    assert load_settings({"SPACE_ID": "x/y"}, data_root=not_a_dir).durability_warning
    assert load_settings({"SPACE_ID": "x/y", "VITRINE_SYNC_URL": "hf://datasets/x/y"},
                         data_root=missing).durability_warning is None
    assert load_settings({"SPACE_ID": "x/y", "DATABASE_URL": "postgresql+psycopg://h/d"},
                         data_root=missing).durability_warning is None
    local = load_settings({}, data_root=tmp_path)  # not a Space: nothing changes
    assert (local.allow_network, local.durability_warning, local.sync_url, local.space_id) == (False, None, None, None)
    with pytest.raises(ValueError, match="VITRINE_SYNC_EVERY"):
        load_settings({"VITRINE_SYNC_EVERY": "0"})


# /proc/mounts of a Space container with a Storage Bucket attached as a read-write volume at /data, plus the other
# kinds of mounts the detection must tell apart (local disks, tmpfs, a rootless container's fuse-overlayfs root)
SPACE_MOUNTS = r"""fuse-overlayfs / fuse.fuse-overlayfs rw,nosuid,nodev,relatime,user_id=0,group_id=0 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
lxcfs /proc/cpuinfo fuse.lxcfs rw,nosuid,nodev,relatime,user_id=0,group_id=0 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
/dev/vda1 /home/user/app ext4 rw,relatime 0 0
hf-mount /data fuse.hf-mount rw,nosuid,nodev,relatime,user_id=1000,group_id=1000 0 0
10.0.0.5:/export /mnt/nfs nfs4 rw,relatime,vers=4.2,proto=tcp 0 0
//files/share /mnt/smb cifs rw,relatime,vers=3.1.1 0 0
s3fs /mnt/s3 fuse.s3fs rw,nosuid,nodev,relatime 0 0
/dev/vdb /mnt/my\040disk ext4 rw,relatime 0 0
10.0.0.6:/x /mnt/my\040disk/inner nfs rw 0 0
/dev/vdc /mnt/nfs/local-cache xfs rw 0 0
"""


@pytest.mark.parametrize("path, mount, remote", [
    ("/data/vitrine", ("/data", "fuse.hf-mount"), "fuse.hf-mount"),  # a bucket volume
    ("/data", ("/data", "fuse.hf-mount"), "fuse.hf-mount"),
    ("/database", ("/", "fuse.fuse-overlayfs"), None),  # a prefix of the name is not a parent
    ("/home/user/app/.vitrine", ("/home/user/app", "ext4"), None),
    ("/tmp/x", ("/tmp", "tmpfs"), None),
    ("/mnt/nfs/v", ("/mnt/nfs", "nfs4"), "nfs4"),
    ("/mnt/nfs/local-cache/db", ("/mnt/nfs/local-cache", "xfs"), None),  # a local disk mounted inside the share
    ("/mnt/smb/v", ("/mnt/smb", "cifs"), "cifs"),
    ("/mnt/s3/v", ("/mnt/s3", "fuse.s3fs"), "fuse.s3fs"),
    ("/mnt/my disk/v", ("/mnt/my disk", "ext4"), None),  # octal escapes in mount points
    ("/mnt/my disk/inner/v", ("/mnt/my disk/inner", "nfs"), "nfs"),
    ("/proc/cpuinfo", ("/proc/cpuinfo", "fuse.lxcfs"), None),
])
def test_remote_storage_on_a_sample_mount_table(path, mount, remote):
    assert mount_of(path, SPACE_MOUNTS) == mount
    assert remote_storage(path, SPACE_MOUNTS) == remote


def test_remote_storage_without_a_mount_table():
    assert mount_of("/data/vitrine", "") is None and remote_storage("/data/vitrine", "") is None
    assert remote_storage("/x", "garbage\n\nnfs-server:/e /x\n") is None  # a line without a type is skipped
    assert remote_storage("/y", "srv /y fuse rw 0 0\n") == "fuse"  # an unnamed FUSE filesystem: not known local


def test_a_data_dir_on_a_bucket_volume_keeps_sqlite_on_local_disk_and_syncs_to_the_volume(tmp_path):
    bucket = tmp_path / "data"
    bucket.mkdir()
    mounts = f"/dev/vda1 / ext4 rw 0 0\nhf-mount {bucket} fuse.hf-mount rw 0 0\n"
    # a Space with the bucket at /data
    s = load_settings({"SPACE_ID": "org/vitrine"}, data_root=bucket, mounts=mounts)
    assert s.data_dir == bucket / "vitrine" and s.data_dir_fs == "fuse.hf-mount"
    assert s.database_url == f"sqlite:///{REPO_ROOT / '.vitrine' / 'vitrine.db'}"  # never on the bucket
    assert s.sync_url == str(bucket / "vitrine" / "events") and s.durability_warning is None
    assert s.blob_location == str(bucket / "vitrine" / "blobs")  # covers and model versions on the volume
    # the Docker image sets VITRINE_DATA_DIR=/data/vitrine: the same rule, Space or not
    for env in ({"VITRINE_DATA_DIR": str(bucket / "vitrine")},
                {"VITRINE_DATA_DIR": str(bucket / "vitrine"), "SPACE_ID": "org/vitrine"}):
        s = load_settings(env, data_root=tmp_path / "none", mounts=mounts)
        assert not s.database_url.startswith(f"sqlite:///{bucket}") and s.sync_url == str(bucket / "vitrine" / "events")
    # explicit choices still win; an external database needs no sink
    s = load_settings({"VITRINE_DATA_DIR": str(bucket / "v"), "VITRINE_SYNC_URL": "hf://buckets/org/b/events"},
                      mounts=mounts)
    assert s.sync_url == "hf://buckets/org/b/events" and not s.database_url.startswith(f"sqlite:///{bucket}")
    s = load_settings({"VITRINE_DATA_DIR": str(bucket / "v"), "DATABASE_URL": "postgresql+psycopg://db/v"},
                      mounts=mounts)
    assert s.sync_url is None and s.database_url == "postgresql+psycopg://db/v"
    # the checkout itself on the network too: the database goes to the temporary directory
    s = load_settings({"VITRINE_DATA_DIR": str(bucket / "v")}, mounts=mounts + f"srv:/c {REPO_ROOT} nfs4 rw 0 0\n")
    assert s.database_url.endswith("/vitrine/vitrine.db") and str(REPO_ROOT) not in s.database_url
    # a data dir on a local disk: the database beside the data, as before, and no sink unless asked for
    local = load_settings({"VITRINE_DATA_DIR": str(tmp_path / "local")}, mounts=mounts)
    assert local.database_url == f"sqlite:///{tmp_path / 'local' / 'vitrine.db'}"
    assert (local.sync_url, local.data_dir_fs) == (None, None)


def test_import_spaces_refuses_when_cuda_came_first(monkeypatch):
    import types

    from app.serving import zerogpu

    monkeypatch.setattr(zerogpu, "spaces_available", lambda: True)
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", torch)
    with pytest.raises(RuntimeError, match="before `spaces`"):
        zerogpu.import_spaces()
    monkeypatch.setattr(zerogpu, "spaces_available", lambda: False)
    assert zerogpu.import_spaces() is False


FAKE_SPACES = textwrap.dedent('''
    """A stand-in for Hugging Face's `spaces` package: records what was imported before it, and each GPU use."""
    import json, os, sys

    _LOG = os.environ["FAKE_SPACES_LOG"]
    _torch = sys.modules.get("torch")
    with open(_LOG, "a") as f:
        f.write(json.dumps({"imported": True, "torch_before": _torch is not None,
                            "heavy_before": sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)})
                + "\\n")

    def GPU(fn=None, duration=60):
        def wrap(f):
            with open(_LOG, "a") as out:
                out.write(json.dumps({"gpu": getattr(f, "__name__", "?"), "duration": duration}) + "\\n")
            return f
        return wrap(fn) if fn is not None else wrap
''')


def _env(tmp_path: Path, **extra) -> dict[str, str]:
    folder = tmp_path / "byo"
    if not folder.exists():
        ds = make_tiny_dataset()
        folder.mkdir(parents=True)
        ds.items.assign(genres=ds.items["genres"].map("|".join))[["item_id", "title", "genres", "year"]].to_csv(
            folder / "items.csv", index=False)
        ds.interactions.to_csv(folder / "interactions.csv", index=False)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VITRINE_", "GRADIO_", "PORT", "DATABASE_URL", "SPACE_ID", "PYTHONPATH"))}
    env.update(VITRINE_DATASET=str(folder), VITRINE_COVER_MODEL="none", VITRINE_CAPTION_MODEL="none",
               VITRINE_MODEL="pop", VITRINE_EXTRA_MODELS="", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS="1", **extra)
    return env


def _sink_with_one_label(tmp_path: Path) -> tuple[str, str]:
    """A sink holding one like (as a previous run of the app would have left it)."""
    import pandas as pd

    from annotation import store, sync
    from annotation.db import make_engine, make_session_factory, upgrade

    url = f"sqlite:///{tmp_path / 'previous.db'}"
    upgrade(url)
    engine = make_engine(url)
    Session = make_session_factory(engine)
    event = str(uuid.uuid4())
    with Session() as s, s.begin():
        store.sync_items(s, pd.DataFrame({"item_id": ["1", "2"], "title": ["Comedy Film 1", "Drama Film 2"]}))
        store.ensure_user(s, "3")
        store.record_feedback(s, event, "3", "2", "like")
    sink = str(tmp_path / "sink")
    sync.sync_once(Session, sink, sync.SyncState())
    engine.dispose()
    return sink, event


@pytest.mark.parametrize("entry", [["app/__main__.py"], ["-m", "app"]], ids=["space-file", "module"])
def test_entry_points_restore_from_the_sink_and_import_spaces_first(tmp_path, entry):
    sink, event = _sink_with_one_label(tmp_path)
    fake = tmp_path / "fake-site"
    fake.mkdir()
    (fake / "spaces.py").write_text(FAKE_SPACES)
    log = tmp_path / "spaces.log"
    env = _env(tmp_path, SPACE_ID="org/vitrine", VITRINE_DATA_DIR=str(tmp_path / "data"), VITRINE_SYNC_URL=sink,
               PYTHONPATH=str(fake), FAKE_SPACES_LOG=str(log))
    proc = subprocess.run([sys.executable, *entry, "--check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sync: restored" in proc.stderr and "== Durability" in proc.stdout and "event sink" in proc.stdout
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0] == {"imported": True, "torch_before": False, "heavy_before": []}
    assert {r["duration"] for r in records[1:] if "gpu" in r} == {120, 60}  # covers and captions run under spaces.GPU
    from annotation import store
    from annotation.db import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'vitrine.db'}")
    with make_session_factory(engine)() as s:
        assert store.feedback_frame(s)["event_id"].tolist() == [event]  # restored before the app started
    engine.dispose()


def test_the_page_warning_reaches_the_log_and_status(tmp_path):
    env = _env(tmp_path, SPACE_ID="org/vitrine", VITRINE_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "app/__main__.py", "--check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" in proc.stderr and "Labels may be lost" in proc.stderr
    assert "NOT durable" in proc.stdout and "VITRINE_SYNC_URL" in proc.stdout


def test_the_page_and_the_status_tab_say_when_labels_are_not_durable(tmp_path, monkeypatch):
    from dataclasses import replace

    from app.web import status_tab
    from app.web.ui import build_demo
    from vitrine_app_fixtures import make_services

    svc = make_services(tmp_path)
    try:
        svc.settings = replace(svc.settings, space_id="org/space")  # a Space, no sink, no external database
        assert svc.settings.durability_warning
        assert "vt-durability-banner" in str(build_demo(svc).config)
        assert "NOT durable" in status_tab.status_html(svc)
        svc.durability = lambda: [("last sync", "2026-11-29 17:00:00 UTC", "")]
        assert "last sync" in status_tab.status_html(svc)
    finally:
        svc.close()
