# Test-only stand-in for the public `prom/prometheus` image (scripts/compose-smoke.sh, where no
# image registry is reachable): Debian bookworm's prometheus 2.42 on a base made here. Same
# entrypoint (the prometheus binary; compose.yaml's `command` are its flags), same
# /etc/prometheus/prometheus.yml and /prometheus volume, runs as `nobody` like the public image;
# wget for compose.yaml's healthcheck. BASE_IMAGE: a Debian root file system.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
LABEL org.opencontainers.image.description="stand-in for prom/prometheus (Debian prometheus)"
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
