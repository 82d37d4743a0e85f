# packetd agent image. NOT BUILT HERE: no Docker engine runs on the development machine; this file is
# checked by reading (tests/deploy/test_deploy.py checks the Kubernetes side), not by a build.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# the kubernetes extra: the chart and manifests run with kubernetes.enabled (lightkube)
RUN pip install --no-cache-dir '.[kubernetes]' && rm -rf /src

# A non-root user; the interpreter gets the two capabilities capture needs as file capabilities, so the
# container may run as this user (allowPrivilegeEscalation must then stay true for file caps to apply).
# The Kubernetes manifests instead run as root with only NET_RAW and NET_ADMIN added: pick one.
RUN useradd --system --uid 10001 --no-create-home packetd \
 && setcap cap_net_raw,cap_net_admin+eip "$(readlink -f "$(command -v python3)")"
USER packetd
WORKDIR /var/lib/packetd
EXPOSE 9091
ENTRYPOINT ["packetd"]
CMD ["agent", "--config", "/etc/packetd/packetd.yaml"]
