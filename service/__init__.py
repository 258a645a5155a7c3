"""HTTP service: FastAPI routes over the shared predictor."""
