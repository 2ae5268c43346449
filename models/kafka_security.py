"""Kafka SASL/TLS settings (``core.settings.KafkaSettings``) as each client library wants them.

Two mappings, one per kind of client the project creates:

- :func:`librdkafka_security`: confluent-kafka ``Producer`` / ``Consumer`` / ``AdminClient`` config
  keys (grabbers, simulator, API publisher, topic creation, main job);
- :func:`faust_credentials`: the Faust app's ``broker_credentials``; :func:`aiokafka_security` turns
  them into ``AIOKafka*`` keyword arguments with Faust's own converter, so a raw aiokafka client
  (the alert-rules follower) connects exactly as the worker's Faust clients do.

PLAINTEXT, the default, maps to nothing (``{}`` / ``None``): every client keeps today's config.

Security is process-wide: called without settings, these read ``get_settings().kafka``, also where
a caller overrides only the bootstrap servers (``--bootstrap``, tests' scratch brokers). The
results hold the SASL password in clear, as the clients need it: never log them.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from core.settings import KafkaSettings, get_settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


def _kafka(kafka: KafkaSettings | None) -> KafkaSettings:
    return kafka if kafka is not None else get_settings().kafka


def _tls(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def _password(kafka: KafkaSettings) -> str:
    assert kafka.sasl_password is not None  # KafkaSettings refuses SASL without one
    return kafka.sasl_password.get_secret_value()


def librdkafka_security(kafka: KafkaSettings | None = None) -> dict[str, str]:
    """librdkafka keys to merge into a client's config (``{}`` for PLAINTEXT).

    Brokers' certificates are verified against ``ssl_cafile`` (else the CAs librdkafka finds on the
    system), and so is their host name (librdkafka >= 2.0 default)."""
    k = _kafka(kafka)
    if k.security_protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL_"):
        config["sasl.mechanism"] = k.sasl_mechanism
        config["sasl.username"] = k.sasl_username or ""
        config["sasl.password"] = _password(k)
    if _tls(k):
        files = (
            ("ssl.ca.location", k.ssl_cafile),
            ("ssl.certificate.location", k.ssl_certfile),
            ("ssl.key.location", k.ssl_keyfile),
        )
        config |= {key: str(path) for key, path in files if path is not None}
    return config


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """A client context that verifies the brokers' certificates and host names (Python's defaults)
    against ``ssl_cafile`` or the system's CAs, presenting ``ssl_certfile`` when set."""
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile:
        context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
    return context


def faust_credentials(kafka: KafkaSettings | None = None) -> CredentialsT | None:
    """``faust.App(broker_credentials=...)``: ``None`` for PLAINTEXT (Faust's default)."""
    from faust.auth import SASLCredentials, SSLCredentials

    k = _kafka(kafka)
    if k.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(k) if _tls(k) else None
    if k.security_protocol == "SSL":
        return SSLCredentials(context)
    # SASL_SSL with a context, SASL_PLAINTEXT without; the credentials' repr shows no password.
    return SASLCredentials(
        username=k.sasl_username, password=_password(k), ssl_context=context, mechanism=k.sasl_mechanism
    )


def aiokafka_security(kafka: KafkaSettings | None = None) -> dict[str, Any]:
    """``AIOKafkaConsumer`` / ``AIOKafkaProducer`` keyword arguments (``{}`` for PLAINTEXT)."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    credentials = faust_credentials(kafka)
    return {} if credentials is None else dict(credentials_to_aiokafka_auth(credentials))
