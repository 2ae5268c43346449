"""``python -m api [--host H] [--port P]``: serve the HTTP API with uvicorn.

Defaults come from the settings (``FOOTFALL_HTTP__HOST``, ``FOOTFALL_HTTP__API_PORT``: 127.0.0.1:8080).
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.app import create_app
from core.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.http.host)
    parser.add_argument("--port", type=int, default=settings.http.api_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.api_token is None:
        logging.getLogger("api").warning("FOOTFALL_API_TOKEN is not set: every write will be refused (403)")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
