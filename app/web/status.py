"""The Status tab's content: what is loaded, what falls back and how to enable it, the store's counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - types only
    from app.serving.services import Services

__all__ = ["status_sections", "redact_url", "redact_secret", "generator_id"]

Section = tuple[str, list[tuple[str, str, str]]]


def generator_id(generator) -> str:
    return "fallback" if generator.uses_fallback else str(generator.model)


def redact_url(url: str) -> str:
    """A database URL without its password (safe to show or log)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "(unparseable URL)"


def redact_secret(text: str, url: str) -> str:
    """`text` (an error message, say) with the password of the database `url` replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparseable URL has no password to hide
        return text
    return text.replace(str(password), "***") if password else text


def _fallback_note(generator, kind: str, variable: str, what: str, private: bool) -> str:
    if not generator.uses_fallback:
        return "real model"
    reason = getattr(generator, "unavailable_reason", None) if private else None  # it names local paths
    return (f"{kind} fallback. To enable: set {variable} to a local {what} dir, or allow downloads with "
            f"VITRINE_ALLOW_NETWORK=1. " + (f"Reason: {reason}" if reason else ""))


def status_sections(svc: "Services") -> list[Section]:
    """What is loaded and how to enable what is not."""
    st = svc.settings
    private = st.admin_open  # paths are shown only on a machine its operator declared private
    hidden = "(hidden: set VITRINE_ADMIN_OPEN=1 on a private machine to show paths)"
    covers, captions = svc.assets.covers, svc.assets.captions
    ranking = svc.ranking
    models = [(name, "served" + (" (default)" if name == ranking.default_model else ""),
               type(ranking.model(name)).__name__) for name in ranking.model_names]
    text = svc.features.get("text")
    gen = [
        ("covers", generator_id(covers), _fallback_note(covers, "typographic", "VITRINE_COVER_MODEL",
                                                         "diffusers pipeline", private)),
        ("captions", generator_id(captions), _fallback_note(captions, "template", "VITRINE_CAPTION_MODEL",
                                                            "causal-LM", private)),
        ("device", str(getattr(covers, "device", st.device)), f"requested: {st.device}"),
        ("text features", "loaded" if text is not None else "none",
         f"{text.shape}" if text is not None else "the 'why' uses genres only"),
        ("background queue", str(svc.assets.worker.queued_items), f"{svc.assets.worker.dropped} items dropped from a full queue"),
        ("stored assets", _mib(svc.assets.quota.stored_bytes) if svc.assets.quota.stored_bytes is not None else "not measured yet",
         (f"quota {_mib(svc.assets.quota.quota_bytes)} (VITRINE_ASSET_QUOTA_MB); {svc.assets.quota.evicted} unlabelled assets "
          "evicted" if svc.assets.quota.quota_bytes is not None else "no quota (VITRINE_ASSET_QUOTA_MB=0)")),
    ]
    backend = "SQLite (WAL)" if st.db_is_sqlite else "PostgreSQL"
    db = [("backend", backend, redact_url(st.database_url) if private or not st.db_is_sqlite else hidden)]
    db += [(name, str(count), "") for name, count in svc.events.counts().items()]
    dataset = svc.catalog.dataset
    data = [
        ("dataset", dataset.name, str(st.data_dir) if private else hidden),
        ("items", str(len(dataset.items)), ""),
        ("users", str(len(dataset.users)), ""),
        ("interactions", str(len(dataset.interactions)), ""),
    ]
    meaning, why = svc.catalog.meaning_search
    data.append(("item search", "by title and by meaning" if meaning else "by title",
                 "the pickers search; none lists the catalog" if meaning else f"no search by meaning: {why}"))
    grown = svc.growth.last if svc.growth is not None else None
    if grown:
        data.append(("last growth", f"+{len(grown['added'])} items",
                     f"ranked now by {', '.join(grown['ranked_now']) or 'no content model'}; by "
                     f"{', '.join(grown['at_next_retrain']) or 'no other model'} after their next retrain"))
    timing = [(step, f"{sec:.2f} s", "") for step, sec in svc.startup_s.items()]
    notes = [("note", n, "") for n in svc.notes]
    durable = list(svc.durability()) if svc.durability is not None else [
        ("event sink", "none", "set VITRINE_SYNC_URL to keep labels through restarts (a Space's disk is wiped)")]
    if st.durability_warning:
        durable.append(("labels", "NOT durable", st.durability_warning))
    return [("Recommenders", models), ("Generation", gen), ("Database", db), ("Durability", durable),
            ("Dataset", data), ("Start-up", timing + notes)]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
