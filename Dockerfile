# One image for every footfall process (grabber, worker, api, init). EXTRAS=grabber adds OpenCV
# and the detector (torch); the other services build with EXTRAS="" and stay light.
FROM python:3.11.11-slim-bookworm

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FOOTFALL_MODEL_CACHE=/app/.local/models

# OpenCV's shared libraries and ffmpeg for the grabber; nothing else from apt.
RUN if [ -n "$EXTRAS" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 ffmpeg \
      && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
# .dockerignore keeps the venv, local state, tests and secrets out.
COPY . .
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"

# .local/spool: the grabbers' store-and-forward spool (a volume in docker-compose.yml), theirs to write;
# .local/models: exported detector models (streams/backends.py; site-packages is read-only to them).
RUN useradd --system --uid 10001 --home-dir /app footfall \
    && mkdir -p /app/.local/spool /app/.local/models && chown -R footfall /app/.local
USER footfall

CMD ["python", "-m", "api"]
