#!/usr/bin/env bash
# Measures the container image (figures for BENCHMARKS.md):
#   - cold build: `make image` with no layer cache (the Debian base already imported; its debootstrap is timed
#     separately by deploy/debian_base.sh's first run);
#   - warm build: `make image` again, nothing changed (every layer cached);
#   - image size;
#   - container cold start, a fresh /data: `run` -> first 200 of `/` (ml-100k copied, text features computed,
#     models trained, app and dashboard started);
#   - container warm start, the same /data volume again.
# Usage: deploy/bench_image.sh   (as root, where `make image` works; ENGINE etc. as in the Makefile)
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${ENGINE:-podman}
run=("$engine")
[ "$engine" = podman ] && run+=(--runtime /usr/sbin/runc)
image=${IMAGE:-localhost/vitrine:latest}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

t=$(now); make -s image IMAGE_BUILD_ARGS=--no-cache >/tmp/vitrine-bench-build.log 2>&1; echo "cold build: $(since "$t") s"
t=$(now); make -s image >/tmp/vitrine-bench-build.log 2>&1; echo "warm build (nothing changed): $(since "$t") s"
"$engine" image inspect --format '{{.Size}}' "$image" | python3 -c "import sys; print(f'image size: {int(sys.stdin.read()) / 1e9:.2f} GB')"

volume=vitrine-bench-$$
"$engine" volume create "$volume" >/dev/null
trap '"$engine" rm -f vitrine-bench >/dev/null 2>&1 || true; "$engine" volume rm -f "$volume" >/dev/null 2>&1 || true' EXIT
for start in cold warm; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  t=$(now)
  "${run[@]}" run -d --name vitrine-bench --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    $([ "$engine" = podman ] && echo --no-healthcheck) -v "$volume:/data" -e PORT="$port" "$image" >/dev/null
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$port/" || true)" = 200 ]; do
    sleep 0.5
  done
  echo "container $start start to first page: $(since "$t") s"
  "$engine" rm -f vitrine-bench >/dev/null
done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
