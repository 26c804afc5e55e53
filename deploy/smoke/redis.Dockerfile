# Test-only stand-in for the public `redis:7.4-alpine` image (scripts/compose-smoke.sh, where no
# image registry is reachable): Debian bookworm's redis-server 7.0 on a base made here. Same
# command (`redis-server ...` as compose.yaml gives it), same /data volume, non-root like the
# public image's `redis` user. BASE_IMAGE: a Debian root file system (compose-smoke.sh imports one).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
LABEL org.opencontainers.image.description="stand-in for redis:7.4-alpine (Debian redis-server)"
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
