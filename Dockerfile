# gitmirror in a container. Build it from this checkout and run it with tokens from the environment:
#
#   docker build -t gitmirror:0.1.0 .
#   docker run --rm -e HF_TOKEN -e MODELSCOPE_API_TOKEN -v gitmirror-cache:/cache \
#       -v "$PWD/mirrors.toml:/config/mirrors.toml:ro" gitmirror:0.1.0 sync /config/mirrors.toml
#
# tests/test_install.py runs the RUN steps below (the wheel build and scripts/install-venv.sh) in fresh
# virtualenvs; the image itself is not built by the test suite (see docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# 1. The wheel, built with the standard build frontend.
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY . .
RUN python -m pip install --no-cache-dir build && python -m build --wheel --outdir /dist

# 2. The image: git and git-lfs from Debian, gitmirror in its own virtualenv, run as a non-root user.
FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends git git-lfs ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/install-venv.sh /tmp/install-venv.sh
COPY --from=wheel /dist/ /tmp/dist/
RUN PIP_NO_CACHE_DIR=1 sh /tmp/install-venv.sh /opt/gitmirror /tmp/dist/gitmirror-*.whl \
 && rm -rf /tmp/dist /tmp/install-venv.sh
RUN useradd --create-home --uid 10001 --user-group gitmirror \
 && mkdir -p /cache && chown gitmirror:gitmirror /cache
ENV PATH=/opt/gitmirror/bin:$PATH \
    GITMIRROR_CACHE=/cache
# The working repositories (git objects only; LFS content streams through): keep them between runs.
VOLUME ["/cache"]
USER gitmirror
WORKDIR /home/gitmirror
ENTRYPOINT ["gitmirror"]
CMD ["--help"]
