# syntax=docker/dockerfile:1
#
# signround-server image (README: "Running on Kubernetes"). Needs BuildKit (the default
# since Docker 23): only the stages the chosen TORCH variant uses are built.
#
#   CPU (default; Debian 12 with Debian's CPU LibTorch):
#     docker build -t signround:0.1.0 .
#   CUDA (GPU workers; the engine built against a CUDA LibTorch):
#     docker build --build-arg TORCH=cuda -t signround-cuda:0.1.0 .
#
# Build arguments:
#   BASE_IMAGE     Debian 12 image of the builder and runtime stages (pinned, dated tag).
#   TORCH          cpu: Debian's libtorch-dev. cuda: LIBTORCH_URL's LibTorch, with the CUDA
#                  toolkit of CUDA_IMAGE (find_package(Torch) needs nvcc and the headers).
#   LIBTORCH_URL   (cuda) where the LibTorch comes from: a cxx11-ABI "shared-with-deps"
#                  LibTorch zip (it bundles the CUDA runtime libraries it needs), matching
#                  CUDA_VERSION; pick one at https://pytorch.org/get-started/locally/.
#   LIBTORCH_SHA256  (cuda) the zip's sha256; checked when set.
#   CUDA_IMAGE     (cuda) NVIDIA devel image whose /usr/local/cuda-CUDA_VERSION is copied.
#   CUDA_VERSION   (cuda) the toolkit directory's version in CUDA_IMAGE.
#   SIGNROUND_CMAKE_ARGS  extra CMake cache entries for scripts/build.sh (default: no tests,
#                  no benchmarks).
#
# The builder runs the README's own scripts (scripts/install-deps.sh, scripts/build.sh);
# the runtime stage installs only `scripts/install-deps.sh --runtime` and the executables.
# No credentials are baked in: PGPASSWORD and AWS_* come from the environment at run time.

ARG BASE_IMAGE=debian:bookworm-20250428-slim
ARG TORCH=cpu
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu22.04

# ---- LibTorch variants -------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS cuda-toolkit

FROM ${BASE_IMAGE} AS torch-cpu
ENV SIGNROUND_LIBTORCH=debian

FROM ${BASE_IMAGE} AS torch-cuda
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu128/libtorch-shared-with-deps-2.7.0%2Bcu128.zip
ARG LIBTORCH_SHA256=""
ARG CUDA_VERSION=12.8
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y -qq --no-install-recommends ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL --retry 3 -o /tmp/libtorch.zip "${LIBTORCH_URL}" \
 && if [ -n "${LIBTORCH_SHA256}" ]; then \
      echo "${LIBTORCH_SHA256}  /tmp/libtorch.zip" | sha256sum -c -; \
    fi \
 && unzip -q /tmp/libtorch.zip -d /opt \
 && rm /tmp/libtorch.zip \
 && test -f /opt/libtorch/share/cmake/Torch/TorchConfig.cmake
COPY --from=cuda-toolkit /usr/local/cuda-${CUDA_VERSION} /usr/local/cuda
ENV SIGNROUND_LIBTORCH=external \
    CMAKE_PREFIX_PATH=/opt/libtorch \
    CUDACXX=/usr/local/cuda/bin/nvcc \
    PATH=/usr/local/cuda/bin:${PATH}

# ---- builder: the README's scripts ---------------------------------------------------------
# hadolint ignore=DL3006
FROM torch-${TORCH} AS builder
ARG SIGNROUND_CMAKE_ARGS="-DSIGNROUND_BUILD_TESTS=OFF -DSIGNROUND_BUILD_BENCH=OFF"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN ./scripts/install-deps.sh \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/root/.cache/ccache \
    ./scripts/build.sh \
 && rm -rf /var/lib/apt/lists/*
# The executables, plus the shared libraries that do not come from Debian packages: a
# CUDA LibTorch's lib/ and the CUDA toolkit libraries the binaries link (the GPU driver,
# libcuda.so.1, is mounted at run time by the NVIDIA container toolkit).
RUN install -d /opt/signround/bin /opt/signround/lib \
 && install -m 0755 build/bin/signround-server build/bin/signround-worker build/bin/signround \
      /opt/signround/bin/ \
 && if [ -d /opt/libtorch/lib ]; then \
      find /opt/libtorch/lib -maxdepth 1 -name '*.so*' -exec cp -a -t /opt/signround/lib {} +; \
    fi \
 && ldd /opt/signround/bin/* | awk '$3 ~ /^\/usr\/local\/cuda/ {print $3}' | sort -u \
      | xargs -r cp -L -t /opt/signround/lib

# ---- runtime -----------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime-cpu
ENV SIGNROUND_LIBTORCH=debian

FROM ${BASE_IMAGE} AS runtime-cuda
ENV SIGNROUND_LIBTORCH=external \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# hadolint ignore=DL3006
FROM runtime-${TORCH} AS runtime
LABEL org.opencontainers.image.title="signround" \
      org.opencontainers.image.description="SignRound LLM quantization service (signround-server)"
COPY scripts/install-deps.sh /tmp/signround/scripts/install-deps.sh
RUN /tmp/signround/scripts/install-deps.sh --runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/signround
RUN groupadd --system --gid 10001 signround \
 && useradd --system --uid 10001 --gid signround --no-create-home \
      --home-dir /var/lib/signround --shell /usr/sbin/nologin signround \
 && install -d -o signround -g signround -m 0750 /var/lib/signround /var/lib/signround/data
COPY --from=builder /opt/signround/lib/ /opt/signround/lib/
RUN echo /opt/signround/lib > /etc/ld.so.conf.d/signround.conf \
 && ldconfig
# signround-worker (each job's engine process) must sit beside signround-server.
COPY --from=builder /opt/signround/bin/ /usr/local/bin/
WORKDIR /var/lib/signround
USER 10001:10001
# gRPC API, and HTTP /metrics /healthz /readyz.
EXPOSE 50051 9464
ENTRYPOINT ["signround-server"]
# Role all with the SQLite store in the data dir; Kubernetes passes its own args.
CMD ["--listen=0.0.0.0:50051", "--metrics-listen=0.0.0.0:9464", \
     "--data-dir=/var/lib/signround/data"]
