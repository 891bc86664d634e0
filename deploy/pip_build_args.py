#!/usr/bin/env python3
"""Print the container-engine options that give `pip` inside an image build the host's pip settings.

    deploy/pip_build_args.py [--engine podman|docker] [--python python3]

Reads `python -m pip config list` (files and PIP_* variables alike), keeps the settings that matter for fetching
packages (index URLs, find-links, trusted hosts, CA bundle, constraints, timeouts, proxy) and prints them as
`--build-arg=PIP_...=VALUE` words, shell-quoted, one per line. Local files and folders they name (the CA bundle,
a constraints file, a find-links folder, a file:// index with its parent folder) are bind-mounted read-only with `--volume=...:ro`:
podman mounts them for the RUN steps only, so none of it ends up in the image. The CA bundle (pip's `cert`,
else $SSL_CERT_FILE, else Debian's bundle) is always passed when the host has one. Docker's `build` has no
volumes: with `--engine docker` only the settings that need no local file are passed.
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import subprocess
import sys
from urllib.parse import unquote, urlsplit

KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "cert", "constraint", "default-timeout",
        "timeout", "retries", "proxy", "no-index")
MOUNT_ROOT = "/run/host-pip"  # where single files (CA bundle, constraints) appear during the build
DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def pip_config(python: str) -> dict[str, str]:
    """`pip config list` as {key: value}; PIP_* variables (`:env:.key`) win over files, later files over earlier."""
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False).stdout
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, raw = line.partition("=")
        if not sep or "." not in name:
            continue
        section, _, key = name.rpartition(".")
        if section not in (":env:", "global", "install", "download", "wheel"):
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        key = "timeout" if key == "default-timeout" else key
        (env if section == ":env:" else files)[key] = str(value)
    return {**files, **env}


def _local_path(entry: str) -> str | None:
    """The local path an index/find-links entry names (a path or a file:// URL), when it exists."""
    path = unquote(urlsplit(entry).path) if entry.startswith("file:") else entry
    return path if path.startswith("/") and os.path.exists(path) else None


def build_options(config: dict[str, str], engine: str) -> list[str]:
    options: list[str] = []
    mounts: dict[str, str] = {}
    volumes = engine != "docker"
    cert = config.get("cert") or os.environ.get("SSL_CERT_FILE") or (DEBIAN_BUNDLE if os.path.exists(DEBIAN_BUNDLE) else None)
    for key in KEYS:
        if key == "default-timeout":
            continue
        value = cert if key == "cert" else config.get(key)
        if not value:
            continue
        if key in ("cert", "constraint"):
            if not volumes or not os.path.isfile(value):
                continue
            target = f"{MOUNT_ROOT}/{key}{os.path.splitext(value)[1] or ''}"
            mounts[value] = target
            value = target
        elif key in ("index-url", "extra-index-url", "find-links"):
            kept = []
            for entry in value.split():
                local = _local_path(entry)
                if local is not None:
                    if not volumes:
                        continue
                    # same path inside, so the URL stays valid; a local index (PEP 503) links its files relatively
                    # (`../../files/x.whl`): its parent folder goes along
                    shared = os.path.dirname(local.rstrip("/")) if key != "find-links" else local
                    mounts[shared] = shared
                elif entry.startswith("file:") or entry.startswith("/"):
                    continue  # names a local place this host does not have: pip would only warn about it
                kept.append(entry)
            if not kept:
                continue
            value = " ".join(kept)
        options.append(f"--build-arg=PIP_{key.upper().replace('-', '_')}={value}")
    options += [f"--volume={src}:{dst}:ro" for src, dst in mounts.items()]
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="podman", choices=("podman", "docker"))
    parser.add_argument("--python", default=sys.executable, help="interpreter whose pip settings are passed")
    args = parser.parse_args(argv)
    for option in build_options(pip_config(args.python), args.engine):
        print(shlex.quote(option))
    return 0


if __name__ == "__main__":
    sys.exit(main())
