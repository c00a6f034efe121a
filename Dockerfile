# dcgan-faces service image: the FastAPI generator with the demo checkpoint baked in.
#
#   docker build -t dcgan-faces .                                   # torch from PyPI (CUDA 13.0 wheels)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 -t dcgan-faces .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t dcgan-faces:cpu .
#
# The CUDA builds of torch carry their own CUDA runtime: the host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit. The default (CUDA 13.0) needs driver >= 580 and a GPU of compute capability
# >= 7.5 (Turing or later); README "Docker" lists the driver each flavour needs. Each flavour installs
# with its own constraints file (deploy/constraints-<cu126|cu128|cpu>.txt, chosen from the URL's last
# segment; any other index uses deploy/constraints.txt, the CUDA 13.0 pins).

# ---- requirements: pyproject's dependency list alone, so that edits to its tool settings (ruff, pytest,
# version) leave the requirement files byte-identical and the (multi-GB) install below cached -------
FROM python:3.11-slim-bookworm AS requirements
WORKDIR /build
COPY pyproject.toml deploy/pyproject_requirements.py ./
RUN python pyproject_requirements.py pyproject.toml

# ---- build: a virtual environment holding the dependencies only ------------------------------------
FROM python:3.11-slim-bookworm AS build

ARG TORCH_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /build
RUN python -m venv /opt/venv
# torch/torchvision from TORCH_INDEX_URL first (the CUDA flavour), then the rest from PyPI, each at the
# version the test suite ran (deploy/constraints.txt).
COPY --from=requirements /build/requirements.txt /build/torch.txt ./
COPY deploy/constraints.txt deploy/constraints-cu128.txt deploy/constraints-cu126.txt deploy/constraints-cpu.txt ./
RUN flavour="constraints-$(basename "$TORCH_INDEX_URL").txt" \
 && if [ -f "$flavour" ]; then mv "$flavour" constraints.txt; fi \
 && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" -r torch.txt -c constraints.txt \
 && pip install --no-cache-dir -r requirements.txt -c constraints.txt

# ---- runtime: the venv and the demo checkpoint, run as an unprivileged user -------------------------
FROM python:3.11-slim-bookworm AS runtime

RUN groupadd --gid 10001 dcgan \
 && useradd --uid 10001 --gid dcgan --create-home --home-dir /home/dcgan --shell /usr/sbin/nologin dcgan

# The dependencies, then the code in place (app/static included, and photos/ and inversion/, which /invert uses;
# training/ stays out of the service image). Code changes rebuild only these small layers, never the venv.
COPY --from=build /opt/venv /opt/venv
COPY checkpoints/demo-faces-64.safetensors /opt/dcgan/checkpoints/demo-faces-64.safetensors
COPY checkpoints/demo-faces-64.encoder.safetensors /opt/dcgan/checkpoints/demo-faces-64.encoder.safetensors
# An export written by an older save_generator is 0600 (mkstemp); the service user must be able to read it.
RUN chmod 0444 /opt/dcgan/checkpoints/demo-faces-64.safetensors /opt/dcgan/checkpoints/demo-faces-64.encoder.safetensors
COPY models /opt/dcgan/models
COPY photos /opt/dcgan/photos
COPY inversion /opt/dcgan/inversion
COPY app /opt/dcgan/app

# DCGAN_HOST=0.0.0.0: inside a container the published port reaches the process only on all interfaces.
# A real checkpoint is mounted read-only (compose: ./checkpoints -> /checkpoints) and chosen with
# DCGAN_CHECKPOINT=/checkpoints/<file>.safetensors.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/dcgan \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DCGAN_HOST=0.0.0.0 \
    DCGAN_PORT=8000 \
    DCGAN_CHECKPOINT=/opt/dcgan/checkpoints/demo-faces-64.safetensors

USER 10001:10001
WORKDIR /opt/dcgan
EXPOSE 8000

# No curl in the image: the standard library asks /readyz (urlopen raises on 503, so the check fails).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ.get('DCGAN_PORT', '8000') + '/readyz', timeout=4)"]

# Exec form: python is PID 1 and receives SIGTERM; uvicorn then drains in-flight requests.
CMD ["python", "-m", "app"]
