# Stand-in for nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04, to build Dockerfile.worker-gpu here:
# a Debian 12 root with apt and no Python (as the CUDA image), and no CUDA libraries at all.
# It proves the Dockerfile's steps and its Python environment; nothing here runs on a GPU.
FROM oddasr-standin/bookworm-minbase:latest
ENV PIP_CERT=/usr/local/share/ca-bundle/host.crt \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY host-ca-bundle.crt /usr/local/share/ca-bundle/host.crt
# Last, so that a new recipe keeps the layers above cached.
ARG STANDIN_RECIPE=unset
LABEL org.oddasr.standin="$STANDIN_RECIPE"
