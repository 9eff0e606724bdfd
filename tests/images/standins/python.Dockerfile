# Stand-in for python:3.11-slim-bookworm, made from Debian's own packages (no registry here):
# Debian 12's Python 3.11 in a virtual environment at /usr/local, so that `python`, `pip` and the
# scripts pip installs are in /usr/local/bin as in the official image. PIP_CERT: this machine's
# CA bundle, which pip must trust to reach the package index from here.
FROM oddasr-standin/bookworm-minbase:latest
ENV LANG=C.UTF-8 \
    PIP_CERT=/usr/local/share/ca-bundle/host.crt
COPY host-ca-bundle.crt /usr/local/share/ca-bundle/host.crt
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local \
    && python --version && pip --version
CMD ["python3"]
# Last, so that a new recipe keeps the layers above cached.
ARG STANDIN_RECIPE=unset
LABEL org.oddasr.standin="$STANDIN_RECIPE"
