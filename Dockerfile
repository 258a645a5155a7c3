# CPU image that serves Naba on port 8000: the model shipped in models/default, or an artifact mounted at
# /models/current with NABA_MODEL_DIR=/models/current.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NABA_MODEL_DIR=/app/models/default NABA_HOST=0.0.0.0 NABA_PORT=8000 HF_HUB_OFFLINE=1
WORKDIR /app

# Every dependency at the version the lock file pins; torch's CPU build comes from PyTorch's own index.
COPY requirements.lock ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock
COPY pyproject.toml README.md ./
COPY naba ./naba
COPY models ./models
COPY training ./training
COPY service ./service
COPY seeds ./seeds
RUN pip install --no-deps . && naba export --model models/default --quantize int8   # what NABA_BACKEND=auto serves

RUN useradd --create-home naba && mkdir -p /models && chown naba /models
USER naba
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["naba", "serve"]
