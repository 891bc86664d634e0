# Vitrine in one container: the Gradio app at `/` and the Streamlit dashboard at `/dashboard/`, both behind
# ONE public port (scripts/serve_all.py, a small reverse proxy that also bridges Streamlit's websocket).
# Works as a Hugging Face Docker Space (README metadata: `sdk: docker`, `app_port: 7860`) and on any host:
#
#   docker build -t vitrine .
#   docker run --rm -p 7860:7860 -v vitrine-data:/data vitrine                    # http://localhost:7860/
#   docker run --rm -p 7860:7860 -e VITRINE_DASHBOARD_PASSWORD=... -v vitrine-data:/data vitrine
#
# The image holds code and pinned dependencies only. MovieLens-100K is read from the recbole wheel into the data
# dir at the first start (its licence forbids redistributing it), model weights come from a mounted dir or, with
# VITRINE_ALLOW_NETWORK=1, the Hub; without them the app runs on its labelled fallbacks.
FROM python:3.11-slim-bookworm

# CPU wheels of torch by default (small image, no CUDA). For a GPU host build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    TOKENIZERS_PARALLELISM=false

# libgomp1: OpenMP runtime of torch and scikit-learn. Fonts ship in generation/fonts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# Spaces run the container as uid 1000; everything it writes goes to /data (mount a volume there to keep it).
RUN useradd --create-home --uid 1000 user \
    && mkdir -p /data /app \
    && chown user:user /data /app
WORKDIR /app

COPY --chown=user:user requirements.txt ./
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" -r requirements.txt \
    && pip install --no-deps recbole==1.2.1

COPY --chown=user:user . .

USER user
ENV HOME=/home/user \
    VITRINE_DATA_DIR=/data \
    HF_HOME=/data/hf \
    PORT=7860
EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"7860\")}/dashboard/_stcore/health', timeout=4)"

# serve_all binds 0.0.0.0:$PORT, starts `python -m app` and `streamlit run app/dashboard.py` on private ports,
# and exits (so the platform restarts the container) if either of them dies.
CMD ["python", "scripts/serve_all.py"]
