#!/usr/bin/env bash
# Makes a local Debian bookworm base image once (`debootstrap --variant=minbase` + `podman import`), for machines
# where no image registry is reachable, so `FROM python:...` cannot be pulled. Reused when it already exists.
#   deploy/debian_base.sh ENGINE IMAGE        e.g. deploy/debian_base.sh podman localhost/vitrine-debian:bookworm
# Needs root and the Debian packages debootstrap (+ the engine); the mirror is $DEBIAN_MIRROR or deb.debian.org.
set -euo pipefail
engine=${1:?usage: debian_base.sh ENGINE IMAGE}
image=${2:?usage: debian_base.sh ENGINE IMAGE}
if "$engine" image exists "$image" 2>/dev/null || "$engine" image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debian_base: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/vitrine-debian.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debian_base: debootstrap --variant=minbase bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Security updates as well (the python image has them); apt lists are not kept in the base.
echo "deb $mirror bookworm-updates main" >>"$root/etc/apt/sources.list"
echo "deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main" >>"$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -c . | "$engine" import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "debian_base: imported $image" >&2
