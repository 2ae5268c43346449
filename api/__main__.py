"""``python -m api [--host H] [--port P]``: serve the HTTP API with uvicorn.
``python -m api keys|users|tenants|recount ...``: manage API keys, users and tenants; recount (api/cli.py).

Defaults come from the settings (``FOOTFALL_HTTP__HOST``, ``FOOTFALL_HTTP__API_PORT``: 127.0.0.1:8080).
With ``FOOTFALL_HTTP__TLS_CERTFILE`` (and ``__TLS_KEYFILE``) set, the port serves HTTPS only.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from api.app import create_app
from api.auth import RedactAccessTokens
from api.security import uvicorn_tls
from core.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("keys", "users", "tenants", "recount"):
        from api.cli import main as cli

        raise SystemExit(cli(argv))
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.http.host)
    parser.add_argument("--port", type=int, default=settings.http.api_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").addFilter(RedactAccessTokens())
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower(), **uvicorn_tls(settings.http))


if __name__ == "__main__":
    main()
