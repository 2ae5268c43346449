"""Live push: a WebSocket client receives crossings and occupancy changes published through Redis
(by ``api.live``'s publisher, and by the ``agents.push`` worker from the crossings topic)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis.asyncio as aioredis
from api_helpers import api_env

from api.live import publish_alert, publish_crossing, publish_occupancy
from models.records import Alert, CrossingEvent, OccupancySample

pytestmark = pytest.mark.integration


def _crossing(camera_id: str, n: int = 1) -> CrossingEvent:
    now = time.time()
    return CrossingEvent(
        event_id=f"{camera_id}:door:{n}",
        camera_id=camera_id,
        line_id="door",
        track_id=n,
        direction="in",
        frame_seq=n,
        occurred_at=now,
        processed_at=now,
        x=10.0,
        y=20.0,
    )


def _run(stack, coro_fn):
    async def main():
        client = aioredis.Redis(host=stack.redis_host, port=stack.redis_port)
        try:
            return await coro_fn(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.fixture
def env(stack, pg, redis_client):
    with api_env(stack, pg, redis_client) as e:
        yield e


def test_websocket_receives_camera_and_group_events(env, stack):
    cam, other, group = env.camera_id(), env.camera_id(), f"{env.tenant}-g"
    env.register(cam, [group])
    with env.client.websocket_connect(f"/api/v1/live/ws?camera_id={cam}&group={group}") as ws:
        hello = ws.receive_json()
        assert hello == {"type": "hello", "cameras": [cam], "groups": [group]}
        assert ws.receive_json() == {"type": "snapshot", "camera_id": cam, "zones": {}}

        async def publish(client):
            await publish_crossing(client, env.prefix, _crossing(cam, 1))
            await publish_crossing(client, env.prefix, _crossing(other, 2))  # not subscribed
            await publish_crossing(client, env.prefix, _crossing(other, 3), groups=[group])  # via its group
            sample = OccupancySample(camera_id=cam, zone_id="hall", at=time.time(), count=4)
            assert await publish_occupancy(client, env.prefix, sample)
            same = OccupancySample(camera_id=cam, zone_id="hall", at=time.time() + 1, count=4)
            assert not await publish_occupancy(client, env.prefix, same)  # unchanged: cached, not pushed

        _run(stack, publish)
        first, second, third = ws.receive_json(), ws.receive_json(), ws.receive_json()
        assert (first["type"], first["camera_id"], first["data"]["track_id"]) == ("crossing", cam, 1)
        assert (second["type"], second["camera_id"], second["data"]["track_id"]) == ("crossing", other, 3)
        assert (third["type"], third["zone_id"], third["data"]["count"]) == ("occupancy", "hall", 4)
        ws.send_text("ping")
        assert ws.receive_json() == {"type": "pong"}

    # A new client gets the cached occupancy at once.
    with env.client.websocket_connect(f"/api/v1/live/ws?camera_id={cam}") as ws:
        ws.receive_json()
        snap = ws.receive_json()
        assert snap["type"] == "snapshot" and snap["zones"]["hall"]["count"] == 4


def test_alerts_reach_the_alerts_channel_and_their_camera(env, stack):
    cam = env.camera_id()
    env.register(cam)
    now = time.time()
    alert = Alert(alert_id=f"camera_offline|{cam}@1", rule="camera_offline", severity="critical", status="active",
                  title=f"Camera {cam} is offline", triggered_at=now, updated_at=now, camera_id=cam)  # fmt: skip
    with (
        env.client.websocket_connect("/api/v1/live/ws?alerts=true") as every,
        env.client.websocket_connect(f"/api/v1/live/ws?camera_id={cam}") as one,
    ):
        assert every.receive_json() == {"type": "hello", "cameras": [], "groups": []}
        one.receive_json(), one.receive_json()  # hello, snapshot

        async def publish(client):
            assert await publish_alert(client, env.prefix, alert) == 2  # both clients

        _run(stack, publish)
        for ws in (every, one):
            frame = ws.receive_json()
            assert (frame["type"], frame["camera_id"], frame["data"]["alert_id"]) == ("alert", cam, alert.alert_id)


def test_websocket_refuses_bad_subscriptions(env):
    from starlette.websockets import WebSocketDisconnect

    for query in ("", "?camera_id=bad%20id"):
        with pytest.raises(WebSocketDisconnect) as exc, env.client.websocket_connect(f"/api/v1/live/ws{query}") as ws:
            ws.receive_json()
        assert exc.value.code == 1008
    assert env.client.get("/api/v1/live/events").status_code == 422


def test_push_agent_forwards_crossings_from_the_topic(env, stack, kafka):
    """The Faust worker (agents.push only) reads the crossings topic and publishes to Redis."""
    from models.topics import catalogue, ensure_topics, topic_name

    ensure_topics(stack.bootstrap, catalogue(env.prefix, 1))
    cam = env.camera_id()
    producer = kafka.producer()
    env.register(cam, [f"{env.tenant}-g"])  # the worker learns the group from the config the API publishes
    proc_env = {
        **os.environ,
        "FOOTFALL_KAFKA__TOPIC_PREFIX": env.prefix,
        "FOOTFALL_KAFKA__PARTITIONS": "1",
        "FOOTFALL_WORKER__SINKS": "false",
        "FOOTFALL_HTTP__WORKER_WEB_PORT": str(20000 + uuid.uuid4().int % 20000),
    }
    # Only the push agents: the counting agents and sinks are other modules, not imported here.
    code = "from agents.app import app; app.conf.autodiscover = False; import agents.push; app.main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "worker", "-l", "warn", "--without-web"],
        env=proc_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with env.client.websocket_connect(f"/api/v1/live/ws?group={env.tenant}-g") as ws:
            frames = _reader(ws)
            frames.get(timeout=10)  # hello
            deadline = time.monotonic() + 90
            got = None
            n = 0
            while got is None and time.monotonic() < deadline:
                n += 1
                producer.produce(topic_name(env.prefix, "crossings"), key=cam, value=_crossing(cam, n).to_json())
                producer.produce(topic_name(env.prefix, "crossings"), key=cam, value=b"{not json")  # skipped
                producer.flush(10)
                try:
                    got = frames.get(timeout=3.0)
                except queue.Empty:
                    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert got is not None, "no crossing reached the WebSocket through the worker"
            assert got["type"] == "crossing" and got["camera_id"] == cam
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _reader(ws) -> queue.Queue:
    """Every frame of ``ws`` into a queue, from a thread (the test client's receive has no timeout)."""
    q: queue.Queue = queue.Queue()

    def run() -> None:
        with contextlib.suppress(Exception):
            while True:
                q.put(ws.receive_json())

    threading.Thread(target=run, daemon=True).start()
    return q
