"""Kafka SASL/TLS settings -> librdkafka keys and Faust/aiokafka arguments (models/kafka_security.py)."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from pydantic import SecretStr, ValidationError
from tls_certs import write_certs

from core.settings import KafkaSettings
from models.kafka_security import aiokafka_security, faust_credentials, librdkafka_security
from streams.publisher import KafkaPublisher

PASSWORD = "pa55-word-never-shown"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return write_certs(tmp_path_factory.mktemp("tls"))


def sasl(protocol: str = "SASL_SSL", **kw) -> KafkaSettings:
    return KafkaSettings(security_protocol=protocol, sasl_username="footfall", sasl_password=SecretStr(PASSWORD), **kw)


def test_plaintext_maps_to_nothing():
    assert librdkafka_security(KafkaSettings()) == {}
    assert faust_credentials(KafkaSettings()) is None
    assert aiokafka_security(KafkaSettings()) == {}


def test_plaintext_leaves_a_clients_config_as_it_was():
    pub = KafkaPublisher("127.0.0.1:1", {})
    try:
        assert set(pub._config) == {
            "bootstrap.servers", "client.id", "enable.idempotence", "acks", "compression.type", "linger.ms",
            "queue.buffering.max.messages", "queue.buffering.max.kbytes", "message.timeout.ms",
            "reconnect.backoff.max.ms", "error_cb", "logger",
        }  # fmt: skip
    finally:
        pub.close(timeout=0.1)


def test_librdkafka_sasl_ssl_with_mutual_tls(tls):
    k = sasl(sasl_mechanism="SCRAM-SHA-512", ssl_cafile=tls.ca, ssl_certfile=tls.cert, ssl_keyfile=tls.key)
    assert librdkafka_security(k) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "footfall",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(tls.ca),
        "ssl.certificate.location": str(tls.cert),
        "ssl.key.location": str(tls.key),
    }


def test_librdkafka_sasl_plaintext_and_ssl_alone(tls):
    assert librdkafka_security(sasl("SASL_PLAINTEXT")) == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "footfall",
        "sasl.password": PASSWORD,
    }
    assert librdkafka_security(KafkaSettings(security_protocol="SSL")) == {"security.protocol": "SSL"}
    k = KafkaSettings(security_protocol="SSL", ssl_cafile=tls.ca)
    assert librdkafka_security(k) == {"security.protocol": "SSL", "ssl.ca.location": str(tls.ca)}


def test_librdkafka_keys_are_ones_the_client_knows(tls):
    from confluent_kafka import Producer

    k = sasl(ssl_cafile=tls.ca, ssl_certfile=tls.cert, ssl_keyfile=tls.key)
    Producer({"bootstrap.servers": "127.0.0.1:1", **librdkafka_security(k)}).flush(0)  # unknown key: raises


def test_faust_and_aiokafka_sasl_ssl(tls):
    from faust.auth import SASLCredentials

    k = sasl(sasl_mechanism="SCRAM-SHA-256", ssl_cafile=tls.ca, ssl_certfile=tls.cert, ssl_keyfile=tls.key)
    creds = faust_credentials(k)
    assert isinstance(creds, SASLCredentials)
    assert PASSWORD not in repr(creds)
    args = aiokafka_security(k)
    context = args.pop("ssl_context")
    assert args == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "footfall",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "footfall test CA"),),) for c in context.get_ca_certs())


def test_faust_and_aiokafka_sasl_plaintext_and_ssl(tls):
    args = aiokafka_security(sasl("SASL_PLAINTEXT"))
    assert args["security_protocol"] == "SASL_PLAINTEXT" and args["ssl_context"] is None
    args = aiokafka_security(KafkaSettings(security_protocol="SSL", ssl_cafile=tls.ca))
    assert args["security_protocol"] == "SSL" and isinstance(args["ssl_context"], ssl.SSLContext)
    assert set(args) == {"security_protocol", "ssl_context"}


def test_the_aiokafka_arguments_build_a_client(tls):
    from aiokafka import AIOKafkaConsumer

    async def build() -> None:
        AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **aiokafka_security(sasl(ssl_cafile=tls.ca)))

    asyncio.run(build())  # a wrong argument name or value raises here


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_username and sasl_password"),
        ({"sasl_username": "u", "sasl_password": "p"}, "security_protocol is PLAINTEXT"),
        ({"ssl_cafile": "/etc/ca.pem"}, "security_protocol is PLAINTEXT"),
        ({"ssl_cafile": "/etc/ca.pem", "security_protocol": "SASL_PLAINTEXT", "sasl_username": "u",
          "sasl_password": "p"}, "security_protocol is SASL_PLAINTEXT"),
        ({"security_protocol": "SSL", "ssl_keyfile": "/etc/key.pem"}, "ssl_keyfile needs ssl_certfile"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u",
          "sasl_password": "p"}, "sasl_mechanism"),
    ],
)  # fmt: skip
def test_settings_that_would_be_ignored_are_refused(kw, message):
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**kw)


def test_the_password_is_not_shown(monkeypatch):
    from core.settings import Settings

    monkeypatch.setenv("FOOTFALL_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FOOTFALL_KAFKA__SASL_USERNAME", "footfall")
    monkeypatch.setenv("FOOTFALL_KAFKA__SASL_PASSWORD", PASSWORD)
    s = Settings(_env_file=None)
    assert s.kafka.sasl_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.model_dump())


def test_a_faust_app_takes_the_credentials(tls):
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    k = sasl(ssl_cafile=tls.ca)
    app = faust.App("test-kafka-security", broker="kafka://127.0.0.1:1", broker_credentials=faust_credentials(k))
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_plain_password"] == PASSWORD
    plain = faust.App(
        "test-kafka-plain", broker="kafka://127.0.0.1:1", broker_credentials=faust_credentials(KafkaSettings())
    )
    assert plain.conf.broker_credentials is None
