# syntax=docker/dockerfile:1
# tinymim serving images. Two targets:
#   docker build -t tinymim-serve .                    # default: small CPU image (serve extra only, no torch)
#   docker build --target gpu -t tinymim-serve:gpu .   # + ONNX Runtime CUDA and TensorRT (the gpu/tensorrt extras)
# Run (the bundle folder comes from 'tinymim export'):
#   docker run --rm -p 8000:8000 -v "$PWD/bundle:/bundle:ro" tinymim-serve
#   docker run --rm --gpus all -p 8000:8000 -v "$PWD/bundle:/bundle:ro" tinymim-serve:gpu
# Flags after the image name go to 'tinymim serve' (e.g. --max-batch-size 16); settings also come from
# TINYMIM_* environment variables (-e TINYMIM_API_KEY=...).

ARG PYTHON_VERSION=3.11

# ---- build: the tinymim wheel (pure Python, built once for both targets) --------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tinymim ./tinymim
COPY tinymim_cli ./tinymim_cli
COPY serve ./serve
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- venv: the serve extra only, in a relocatable virtual environment ----------------------------------
FROM python:${PYTHON_VERSION}-slim AS venv
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/tinymim-*.whl)[serve]" && rm -rf /wheels

# ---- gpu: ONNX Runtime CUDA + TensorRT, both from pip: the `gpu` and `tensorrt` extras of pyproject.toml ------
# One source of versions: the image installs the same extras a pip user does, so the TensorRT that builds engines
# (`tinymim export` with the tensorrt extra) and the one in this image have the same major (an engine loads only
# in the TensorRT version that built it; serve/runtimes/tensorrt.py says so when they differ). The CUDA 13 and
# cuDNN 9 libraries come as nvidia-* wheels with onnxruntime-gpu and TensorRT; the driver comes from the host
# (docker run --gpus all, NVIDIA Container Toolkit), so the base is the same slim Python as the CPU image.
FROM python:${PYTHON_VERSION}-slim AS gpu
ARG NVIDIA_INDEX=https://pypi.nvidia.com
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    TINYMIM_HOST=0.0.0.0 TINYMIM_PORT=8000 TINYMIM_BUNDLE=/bundle
COPY --from=build /wheels /wheels
# onnxruntime (pulled in by [serve]) and onnxruntime-gpu share the module `onnxruntime`: keep only the GPU build.
RUN python -m venv /opt/venv \
    && WHEEL="$(ls /wheels/tinymim-*.whl)" \
    && pip install --extra-index-url "${NVIDIA_INDEX}" "${WHEEL}[serve,tensorrt]" \
    && pip uninstall -y onnxruntime \
    && pip install "${WHEEL}[gpu]" \
    && python -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers(), o.get_available_providers()" \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home tinymim
USER tinymim
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('TINYMIM_PORT', '8000'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tinymim", "serve"]

# ---- cpu (default, last stage): small serving image, non-root -----------------------------------------
FROM python:${PYTHON_VERSION}-slim AS cpu
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    TINYMIM_HOST=0.0.0.0 TINYMIM_PORT=8000 TINYMIM_BUNDLE=/bundle
RUN useradd --system --uid 10001 --no-create-home tinymim
COPY --from=venv /opt/venv /opt/venv
USER tinymim
EXPOSE 8000
# Ready = model loaded, hash-verified and warmed up (503 before); urlopen raises (exit 1) on any non-2xx.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('TINYMIM_PORT', '8000'), timeout=2)"]
# SIGTERM: stop accepting, finish in-flight requests, drain the batcher, exit 0 (docker stop -t 35 to be safe).
STOPSIGNAL SIGTERM
ENTRYPOINT ["tinymim", "serve"]
