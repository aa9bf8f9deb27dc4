# lkload load generator: one image for the master and the workers of a distributed campaign
# (docs/distributed.md). No credentials and no server address in here: they come from the env
# file at run time. Results and reports go to the volumes /work/results and /work/reports.
#
#   docker build -t lkload .
#   docker run --rm lkload --help
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
 && useradd --create-home --uid 1000 lkload \
 && mkdir -p /work/results /work/reports /work/scenarios \
 && chown -R lkload:lkload /work \
 && rm -rf /src

USER lkload
WORKDIR /work
VOLUME ["/work/results", "/work/reports"]
# The master's port for workers (lkload run --master --master-port, default 5557).
EXPOSE 5557
ENTRYPOINT ["lkload"]
CMD ["--help"]
