"""The HTTP API (FastAPI, served by uvicorn beside the Faust worker): ``python -m api``."""
