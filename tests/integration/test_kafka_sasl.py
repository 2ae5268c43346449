"""Kafka SASL/TLS passthrough against a real broker: a private single-node Kafka (the shared stack's
jars) with a SASL_SSL listener (PLAIN, a certificate from a test CA) beside its PLAINTEXT one.
librdkafka clients (topic creation, produce, consume) and aiokafka clients, configured only by
``models.kafka_security`` from ``KafkaSettings``, connect, verify the broker and authenticate; a
wrong password is refused."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_kafka import PrivateKafka, _Kafka
from pydantic import SecretStr
from tls_certs import TlsFiles, write_certs

from core.settings import KafkaSettings
from infra.local import configs
from models.kafka_security import aiokafka_security, librdkafka_security
from models.records import StreamStats
from models.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

PASSWORD = "sasl-" + uuid.uuid4().hex


class SaslKafka(_Kafka):
    """The private broker with a SASL_SSL listener on ``sasl_port`` added to its configuration."""

    def __init__(self, base: _Kafka, sasl_port: int, tls: TlsFiles, keystore: Path) -> None:
        super().__init__(base.lay, base.libs)
        self.sasl_port = sasl_port
        keystore.write_bytes(tls.key.read_bytes() + tls.cert.read_bytes())  # PEM: key, then its chain
        self.keystore = keystore

    def prepare(self) -> None:
        super().prepare()  # PLAINTEXT + controller, storage formatted
        host, plain = self.lay.kafka_host, f"PLAINTEXT://{self.lay.kafka_host}:{self.lay.kafka_port}"
        props = configs.kafka_server_properties(self.lay)
        props = props.replace(f"listeners={plain},", f"listeners={plain},SASL_SSL://{host}:{self.sasl_port},")
        props = props.replace(
            f"advertised.listeners={plain}", f"advertised.listeners={plain},SASL_SSL://{host}:{self.sasl_port}"
        )
        props = props.replace("PLAINTEXT:PLAINTEXT\n", "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL\n")
        jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_footfall="{PASSWORD}";'
        props += "\n".join(
            [
                "sasl.enabled.mechanisms=PLAIN",
                f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
                "listener.name.sasl_ssl.ssl.keystore.type=PEM",
                f"listener.name.sasl_ssl.ssl.keystore.location={self.keystore}",
                "",
            ]
        )
        assert props.count("SASL_SSL://") == 2 and "SASL_SSL:SASL_SSL" in props
        self.properties.write_text(props)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def broker(stack, tmp_path_factory) -> Iterator[tuple[str, TlsFiles]]:
    root = tmp_path_factory.mktemp("sasl-kafka")
    tls = write_certs(root)
    kafka = PrivateKafka(root)
    sasl_port = free_port()
    kafka.proc = SaslKafka(kafka.proc, sasl_port, tls, root / "keystore.pem")
    kafka.start()
    try:
        yield f"127.0.0.1:{sasl_port}", tls
    finally:
        kafka.stop()


def settings(tls: TlsFiles, password: str = PASSWORD) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username="footfall",
        sasl_password=SecretStr(password),
        ssl_cafile=tls.ca,
    )


def test_librdkafka_and_aiokafka_clients_authenticate_over_tls(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    bootstrap, tls = broker
    k = settings(tls)
    topic = f"test.sasl.{uuid.uuid4().hex[:8]}"
    assert ensure_topics(bootstrap, [TopicSpec(topic, StreamStats, 1, "camera_id")], kafka=k) == [topic]

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **librdkafka_security(k)})
    producer.produce(topic, key=b"cam", value=b"over SASL_SSL")
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-sasl", **librdkafka_security(k)})
    consumer.assign([TopicPartition(topic, 0, 0)])
    msg = consumer.poll(30)
    consumer.close()
    assert msg is not None and msg.error() is None and msg.value() == b"over SASL_SSL"

    async def read_with_aiokafka() -> bytes:
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **aiokafka_security(k))
        await c.start()
        try:
            return (await asyncio.wait_for(c.getone(), 30)).value
        finally:
            await c.stop()

    assert asyncio.run(read_with_aiokafka()) == b"over SASL_SSL"


def test_a_wrong_password_is_refused_and_not_logged(broker, caplog, capfd):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    bootstrap, tls = broker
    wrong = settings(tls, password="not-it")
    admin = AdminClient({"bootstrap.servers": bootstrap, **librdkafka_security(wrong)})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=4)

    async def start_aiokafka() -> None:
        from aiokafka import AIOKafkaProducer

        p = AIOKafkaProducer(bootstrap_servers=bootstrap, **aiokafka_security(wrong))
        try:
            await p.start()
        finally:
            await p.stop()

    from aiokafka.errors import KafkaConnectionError

    with pytest.raises(KafkaConnectionError):
        asyncio.run(start_aiokafka())
    assert "SaslAuthenticationFailed" in caplog.text
    out, err = capfd.readouterr()
    assert "Invalid username or password" in err  # librdkafka's log line
    assert all("not-it" not in text for text in (caplog.text, out, err))


def test_a_client_that_does_not_trust_the_broker_is_refused(broker, tmp_path):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    bootstrap, _ = broker
    other_ca = write_certs(tmp_path)  # another CA: the broker's certificate does not chain to it
    admin = AdminClient({"bootstrap.servers": bootstrap, **librdkafka_security(settings(other_ca))})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=4)
