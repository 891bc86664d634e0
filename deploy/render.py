"""Render `deploy/nginx.conf.template` into a private run directory (used by `scripts/serve_all.py` and the tests).

The template's placeholders are `@NAME@` (nginx's own variables are `$name`, so the two never collide); every
placeholder must be filled, and every value is validated first, so nothing a caller passes can add an nginx
directive. With `replica_ports` (serve_all's --replicas N) the app's upstream has N servers behind a consistent hash
on the visitor's route cookie (the template explains it); with one app process it renders as it always did.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
_SIZE = re.compile(r"^[1-9][0-9]{0,9}[kKmMgG]?$")  # nginx size syntax: bytes, or k/m/g
MAX_REPLICAS = 16  # app processes one front may balance (one machine's worth)
_SOURCE = re.compile(r"^('self'|'none'|https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?)$")  # a CSP source we allow


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunConfig:
    host: str = "0.0.0.0"  # public interface (an IPv4 address, or "*")
    port: int = 7860  # public port
    app_port: int = 7861  # the Gradio app's loopback port
    dashboard_port: int = 8501  # Streamlit's loopback port
    max_body: str = "16m"  # client_max_body_size: larger request bodies get 413
    public_scheme: str = "http"  # what the browser uses: "https" behind a TLS proxy (a Space)
    trusted_proxy: str | None = None  # a network (CIDR) whose X-Forwarded-For is believed: a Space's proxy
    join_rate: str = "5r/s"  # joins of Gradio's queue one client may make (nginx limit_req rate: r/s or r/m)
    join_burst: int = 30  # ... of which this many at once (a page load and a few clicks)
    conn_per_client: int = 64  # requests one client may have open at once (nginx limit_conn)
    frame_ancestors: str = "'self'"  # who may frame the pages (CSP); a Space: "'self' https://huggingface.co"
    replica_ports: tuple[int, ...] = ()  # loopback ports of app replicas 2..N (empty: one app process, at app_port)

    def __post_init__(self) -> None:
        for name in ("port", "app_port", "dashboard_port"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                raise ValueError(f"{name} must be a TCP port between 1 and 65535, got {value!r}")
        if not isinstance(self.replica_ports, tuple) or len(self.replica_ports) > MAX_REPLICAS - 1 or not all(
                isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in self.replica_ports):
            raise ValueError(f"replica_ports must be a tuple of at most {MAX_REPLICAS - 1} TCP ports, "
                             f"got {self.replica_ports!r}")
        if len(set(self.app_ports)) != len(self.app_ports):
            raise ValueError(f"replica_ports must differ from each other and from app_port, got {self.app_ports!r}")
        if self.host != "*":
            try:
                ipaddress.IPv4Address(self.host)
            except ValueError:
                raise ValueError(f"host must be an IPv4 address or '*', got {self.host!r}") from None
        if not _SIZE.match(str(self.max_body)):
            raise ValueError(f"max_body must be an nginx size such as 16m, 512k or 1048576, got {self.max_body!r}")
        if self.public_scheme not in ("http", "https"):
            raise ValueError(f"public_scheme must be 'http' or 'https', got {self.public_scheme!r}")
        if not re.match(r"^[1-9][0-9]{0,5}r/[sm]$", str(self.join_rate)):
            raise ValueError(f"join_rate must be an nginx rate such as 5r/s or 120r/m, got {self.join_rate!r}")
        for name, high in (("join_burst", 100_000), ("conn_per_client", 65_535)):  # nginx's limit_conn: < 65536
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise ValueError(f"{name} must be an integer between 1 and {high}, got {value!r}")
        if not all(_SOURCE.match(part) for part in str(self.frame_ancestors).split()) or not str(
                self.frame_ancestors).strip():
            raise ValueError("frame_ancestors must be CSP sources such as 'self', 'none' or https://huggingface.co, "
                             f"got {self.frame_ancestors!r}")
        if self.trusted_proxy is not None:
            try:
                ipaddress.ip_network(self.trusted_proxy)
            except ValueError:
                raise ValueError(f"trusted_proxy must be a network such as 10.0.0.0/8 or 0.0.0.0/0, "
                                 f"got {self.trusted_proxy!r}") from None


    @property
    def app_ports(self) -> tuple[int, ...]:
        """Every app process's loopback port, replica 1 first."""
        return (self.app_port, *self.replica_ports)


def _app_upstream(config: RunConfig) -> str:
    """The servers of the app's upstream. One process: a plain server. Several: a consistent hash on the visitor's
    route (see the template), each server taken out for 5 s after 3 failed attempts within 5 s."""
    if not config.replica_ports:
        return f"server 127.0.0.1:{config.app_port};"
    lines = ["hash $vitrine_route consistent;"]
    # a dead replica refuses connections at once and each such request goes on to the next one, so waiting for 3
    # failures costs nothing; one stray error must not move every visitor of a live replica
    lines += [f"server 127.0.0.1:{port} max_fails=3 fail_timeout=5s;" for port in config.app_ports]
    return "\n        ".join(lines)


def _replica_of_upstream(config: RunConfig) -> str:
    """map entries: the upstream address that answered (the last one nginx tried) -> the replica's number."""
    if not config.replica_ports:
        return ""
    return "\n        ".join(f'"~(^|, )127\\.0\\.0\\.1:{port}$" {n};' for n, port in enumerate(config.app_ports, 1))


def render(config: RunConfig, run_dir: Path, template: str | None = None) -> str:
    """The nginx.conf text for `config`, with its pid and temp files under `run_dir`."""
    text = TEMPLATE.read_text() if template is None else template
    values = {
        "HOST": config.host, "PORT": str(config.port), "APP_PORT": str(config.app_port),
        "DASHBOARD_PORT": str(config.dashboard_port), "MAX_BODY": str(config.max_body),
        "PUBLIC_SCHEME": config.public_scheme, "RUN_DIR": str(run_dir), "JOIN_RATE": config.join_rate,
        "JOIN_BURST": str(config.join_burst), "CONN_PER_CLIENT": str(config.conn_per_client),
        "FRAME_ANCESTORS": config.frame_ancestors,
        # X-Frame-Options cannot name another site: sent only when no other site may frame the pages
        "FRAME_OPTIONS": ("add_header X-Frame-Options SAMEORIGIN always;"
                          if config.frame_ancestors in ("'self'", "'none'") else ""),
        "APP_UPSTREAM": _app_upstream(config),
        "REPLICA_OF_UPSTREAM": _replica_of_upstream(config),
        "COOKIE_SECURE": "; Secure" if config.public_scheme == "https" else "",
        # several replicas: the route cookie when one was drawn, and which replica answered
        "REPLICA_HEADERS": ("add_header Set-Cookie $vitrine_route_cookie;\n"
                            "        add_header X-Vitrine-Replica $vitrine_replica always;" if config.replica_ports else ""),
        "REAL_IP": (f"set_real_ip_from {ipaddress.ip_network(config.trusted_proxy)};\n"
                    "    real_ip_header X-Forwarded-For;" if config.trusted_proxy else ""),
    }
    if re.search(r"[\s;{}'\"]", str(run_dir)):
        raise ValueError(f"run_dir must not contain spaces, quotes, braces or semicolons, got {str(run_dir)!r}")
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - values.keys())
    if unknown:
        raise ValueError(f"template: unknown placeholders {unknown}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_run_dir(config: RunConfig, parent: str | None = None) -> Path:
    """A fresh private directory holding the rendered `nginx.conf` (nginx writes its pid and temp files there).
    Mode 0755, so nginx's workers can reach their temp files when the master runs as root (they drop to nobody)."""
    run_dir = Path(tempfile.mkdtemp(prefix="vitrine-serve-", dir=parent))
    os.chmod(run_dir, 0o755)
    (run_dir / "nginx.conf").write_text(render(config, run_dir))
    return run_dir
