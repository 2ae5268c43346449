"""Camera configuration for the grabber: a YAML/JSON file of ``CameraConfig`` objects, or the
compacted ``camera-config`` topic (the platform's source of truth).

File format (YAML or JSON), either a list of cameras or ``{"cameras": [...]}``; each item is a
:class:`~models.records.CameraConfig` as on the wire. String values may use ``${VAR}`` and
``${VAR:-default}``; a relative ``file`` source path is taken relative to the config file::

    cameras:
      - camera_id: lobby
        stream: {protocol: file, url: "${FOOTFALL_DEMO_VIDEO:-clip.mp4}", target_fps: 5}
        detection: {imgsz: 320, confidence: 0.3}
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models.base import SchemaError, parse
from models.kafka_security import librdkafka_security
from models.records import CameraConfig

log = logging.getLogger(__name__)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    pass


def expand_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a JSON-like value.

    >>> expand_env({"url": "${NOPE_X:-a.mp4}", "n": [1, "${NOPE_X:-b}"]}, env={})
    {'url': 'a.mp4', 'n': [1, 'b']}
    """
    env = os.environ if env is None else env
    if isinstance(value, str):

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}})")

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    return value


def parse_configs(data: Any, base_dir: Path | None = None, env: dict[str, str] | None = None) -> list[CameraConfig]:
    """CameraConfigs from a decoded file; errors name the camera and the field."""
    items = data.get("cameras") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError("a camera config file is a list of cameras or an object with a 'cameras' list")
    configs: list[CameraConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"cameras[{i}]: expected an object, got {type(item).__name__}")
        item = expand_env(item, env)
        stream = item.get("stream")
        if base_dir is not None and isinstance(stream, dict) and stream.get("protocol") == "file":
            url = str(stream.get("url", ""))
            if url and not url.startswith("file:") and not Path(url).is_absolute():
                stream["url"] = str((base_dir / url).resolve())
        try:
            cfg = parse(CameraConfig, item)
        except SchemaError as exc:
            raise ConfigError(f"cameras[{i}] ({item.get('camera_id', '?')}): {exc}") from None
        if cfg.camera_id in seen:
            raise ConfigError(f"cameras[{i}]: duplicate camera_id {cfg.camera_id!r}")
        seen.add(cfg.camera_id)
        configs.append(cfg)
    return configs


def load_configs(path: str | Path) -> list[CameraConfig]:
    """Read a YAML (``.yaml``/``.yml``) or JSON camera config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read camera config {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_configs(data, base_dir=path.parent.resolve())


def select(configs: Iterable[CameraConfig], only: Iterable[str] | None = None) -> dict[str, CameraConfig]:
    """The cameras a grabber should run: enabled, with a stream, and in ``only`` when given."""
    wanted = set(only) if only else None
    out = {}
    for cfg in configs:
        if wanted is not None and cfg.camera_id not in wanted:
            continue
        if not cfg.enabled or cfg.stream is None:
            continue
        out[cfg.camera_id] = cfg
    return out


class ConfigTopicFollower:
    """Follows the compacted camera-config topic: reads it from the beginning, then keeps up.

    Runs a consumer thread without a consumer group (every grabber needs every camera's config);
    :meth:`snapshot` returns the current configs and whether they changed since the last call.
    A tombstone removes a camera; a malformed record is logged and skipped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._configs: dict[str, CameraConfig] = {}
        self._changed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ConfigTopicFollower:
        self._thread = threading.Thread(target=self._run, daemon=True, name="config-follower")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def snapshot(self) -> tuple[list[CameraConfig], bool]:
        with self._lock:
            changed, self._changed = self._changed, False
            return list(self._configs.values()), changed

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record into the current configs."""
        if key is None:
            return
        camera_id = key.decode(errors="replace")
        with self._lock:
            if value is None:
                if self._configs.pop(camera_id, None) is not None:
                    self._changed = True
                return
            try:
                cfg = parse(CameraConfig, value)
            except SchemaError as exc:
                log.warning("skipping malformed camera config for %s: %s", camera_id, exc)
                return
            if self._configs.get(camera_id) is None or self._configs[camera_id].to_json() != cfg.to_json():
                self._configs[camera_id] = cfg
                self._changed = True

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "footfall-grabber-config-unused",  # required by the client; never committed
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                **librdkafka_security(),
            }
        )
        try:
            while not self._stop.is_set():
                try:
                    meta = consumer.list_topics(self.topic, timeout=5)
                    parts = meta.topics[self.topic].partitions
                    if parts:
                        break
                except Exception as exc:
                    log.warning("config topic %s not available yet: %s", self.topic, exc)
                self._stop.wait(2)
            else:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    log.warning("config topic: %s", msg.error())
                    continue
                self.apply(msg.key(), msg.value())
        finally:
            consumer.close()
