# amplifier in a container: the campaign folder mounted read-only at /campaign, the state (sessions, limits, the
# delivery ledger) in the volume /state, secrets from the environment or Docker secrets (/run/secrets).
#
#   docker build -t amplifier .
#   docker run -d --name amplifier -v "$PWD:/campaign:ro" -v amplifier-state:/state \
#     -e AMPLIFIER_MASTODON_EN_TOKEN=... amplifier
#   docker run --rm -v "$PWD:/campaign:ro" amplifier preview        # any command: validate, preview, status...
#
# See docs/deploy.md, and compose.yaml for the same with Docker Compose and Docker secrets.

# Any Debian bookworm image with python3, python3-venv and useradd works as well: the tests build on one made from
# Debian's python3 package (docs/deploy.md, Podman).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install amplifier and its dependencies into a virtualenv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# python3, not python: Debian's python3 package (a base image made with debootstrap) has no `python` command.
RUN python3 -m venv /opt/amplifier
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
# Every dependency at the version pinned in constraints.txt: a release on the day of a campaign changes nothing.
RUN /opt/amplifier/bin/pip install --no-cache-dir -c constraints.txt . \
    && /opt/amplifier/bin/python -m compileall -q /opt/amplifier/lib

# ---- runtime: the virtualenv only, run by an unprivileged user
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" amplifier \
    && useradd --system --uid "${UID}" --gid amplifier --home-dir /state --no-create-home \
       --shell /usr/sbin/nologin amplifier \
    && mkdir -p /campaign /state \
    && chown amplifier:amplifier /state \
    && chmod 0700 /state
COPY --from=build /opt/amplifier /opt/amplifier
ENV PATH=/opt/amplifier/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    AMPLIFIER_CONFIG=/campaign/schedule.yaml \
    AMPLIFIER_STATE=/state
# Secrets: the variables named in schedule.yaml (token_env, password_env), or files of those names in
# /run/secrets (Docker secrets; another folder with AMPLIFIER_SECRETS_DIR).
USER ${UID}:${UID}
WORKDIR /state
VOLUME ["/state"]
# Unhealthy (exit code not 0) when the daemon's heartbeat is older than 3 minutes or a post has been claimed for
# 15 minutes. (A daemon whose campaign files become invalid keeps running the last valid version, and stays healthy.)
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 \
    CMD ["amplifier", "status", "--check", "--format", "json"]
ENTRYPOINT ["amplifier"]
CMD ["run"]
