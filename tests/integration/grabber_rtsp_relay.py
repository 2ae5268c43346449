"""A tiny RTSP relay for tests: Debian's ffmpeg pushes a clip to it, cameras' clients play it.

Why: ffmpeg's RTSP *muxer* cannot listen (``-rtsp_flags listen`` is a demuxer-only option in
ffmpeg 5.x), so ffmpeg alone cannot play the part of a camera. This relay is the smallest RTSP
server that can: it accepts one publisher (``ANNOUNCE``/``SETUP``/``RECORD``, RTP interleaved
over TCP) and any number of players (``DESCRIBE``/``SETUP``/``PLAY``, interleaved over TCP),
and forwards the publisher's ``$``-framed RTP/RTCP packets to every playing client. Optional
Basic authentication for players lets tests check that a grabber really sends its password.

``stop()`` closes every socket and kills the ffmpeg publisher, like a camera losing power;
``start()`` brings it back on the same port. Setting ``paused`` keeps every connection open but
stops the media, like a camera whose encoder hangs.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.playing = False
        self.lock = threading.Lock()

    def send(self, data: bytes) -> bool:
        with self.lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False


class RtspRelay:
    """RTSP relay on ``127.0.0.1:port`` at path ``/cam``, fed by ffmpeg looping ``clip``."""

    def __init__(
        self,
        clip: Path,
        port: int | None = None,
        path: str = "cam",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.clip = clip
        self.port = port or free_port()
        self.path = path
        self.auth = None
        if username is not None and password is not None:
            self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.sdp: bytes | None = None
        self.players: list[_Conn] = []
        self.unauthorized = 0  # DESCRIBEs refused for missing/wrong credentials
        self.packets = 0  # packets received from the publisher
        self.paused = False  # True: connections stay open but no media flows (a stalled camera)
        self._listener: socket.socket | None = None
        self._ffmpeg: subprocess.Popen | None = None
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._running = False

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.path}"

    # ------------------------------------------------------------------ lifecycle

    def start(self, wait_s: float = 10.0) -> RtspRelay:
        """Listen, start the ffmpeg publisher and wait until it has announced its stream."""
        self.sdp = None
        self._running = True
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen(16)
        self._listener = lst
        threading.Thread(target=self._accept_loop, args=(lst,), daemon=True, name="rtsp-accept").start()
        self._ffmpeg = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.clip),
                "-an",
                "-c",
                "copy",
                "-f",
                "rtsp",
                "-rtsp_transport",
                "tcp",
                f"rtsp://127.0.0.1:{self.port}/_publish",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + wait_s
        while self.sdp is None:
            if time.monotonic() > deadline or self._ffmpeg.poll() is not None:
                self.stop()
                raise RuntimeError("ffmpeg did not publish to the RTSP relay")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Drop everything at once: publisher, players and the listening socket."""
        self._running = False
        if self._ffmpeg is not None:
            self._ffmpeg.kill()
            self._ffmpeg.wait(5)
            self._ffmpeg = None
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns, self.players = self._conns, [], []
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.sock.close()
        self.sdp = None

    def __enter__(self) -> RtspRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ protocol

    def _accept_loop(self, lst: socket.socket) -> None:
        while self._running:
            try:
                sock, _ = lst.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="rtsp-conn").start()

    def _serve(self, conn: _Conn) -> None:
        try:
            while self._running:
                if conn.buf[:1] == b"$":
                    if len(conn.buf) < 4:
                        if not self._fill(conn):
                            return
                        continue
                    size = int.from_bytes(conn.buf[2:4], "big")
                    if len(conn.buf) < 4 + size:
                        if not self._fill(conn):
                            return
                        continue
                    packet, conn.buf = conn.buf[: 4 + size], conn.buf[4 + size :]
                    if not conn.playing:  # from the publisher; players' RTCP reports are dropped
                        self.packets += 1
                        self._forward(packet)
                    continue
                head_end = conn.buf.find(b"\r\n\r\n")
                if head_end < 0:
                    if not self._fill(conn):
                        return
                    continue
                head = conn.buf[:head_end].decode("latin-1")
                lines = head.split("\r\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                while len(conn.buf) < head_end + 4 + length:
                    if not self._fill(conn):
                        return
                body = conn.buf[head_end + 4 : head_end + 4 + length]
                conn.buf = conn.buf[head_end + 4 + length :]
                self._answer(conn, lines[0], headers, body)
        finally:
            with self._lock:
                if conn in self.players:
                    self.players.remove(conn)
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _fill(self, conn: _Conn) -> bool:
        try:
            data = conn.sock.recv(65536)
        except OSError:
            return False
        if not data:
            return False
        conn.buf += data
        return True

    def _forward(self, packet: bytes) -> None:
        if self.paused:
            return
        with self._lock:
            players = list(self.players)
        for p in players:
            if not p.send(packet):
                with self._lock:
                    if p in self.players:
                        self.players.remove(p)

    def _answer(self, conn: _Conn, request_line: str, headers: dict[str, str], body: bytes) -> None:
        method, url, _ = (request_line.split(" ") + ["", ""])[:3]
        cseq = headers.get("cseq", "0")
        extra: dict[str, str] = {}
        payload = b""
        status = "200 OK"
        if method == "OPTIONS":
            extra["Public"] = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN, GET_PARAMETER"
        elif method == "ANNOUNCE":
            self.sdp = body
        elif method == "DESCRIBE":
            if self.auth is not None and headers.get("authorization") != self.auth:
                self.unauthorized += 1
                status = "401 Unauthorized"
                extra["WWW-Authenticate"] = 'Basic realm="footfall-test"'
            elif self.sdp is None or not url.rstrip("/").endswith("/" + self.path):
                status = "404 Not Found"
            else:
                payload = self.sdp
                extra["Content-Base"] = url.rstrip("/") + "/"
                extra["Content-Type"] = "application/sdp"
        elif method == "SETUP":
            transport = headers.get("transport", "")
            if "TCP" not in transport.upper():
                status = "461 Unsupported Transport"
            else:
                extra["Transport"] = transport
                extra["Session"] = "12345678"
        elif method == "RECORD":
            extra["Session"] = "12345678"
        elif method == "PLAY":
            extra["Session"] = "12345678"
            extra["Range"] = "npt=0.000-"
            conn.playing = True
        elif method == "TEARDOWN":
            conn.playing = False
        elif method != "GET_PARAMETER":
            status = "501 Not Implemented"
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}"] + [f"{k}: {v}" for k, v in extra.items()]
        if payload:
            lines.append(f"Content-Length: {len(payload)}")
        conn.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        if method == "PLAY":
            with self._lock:
                self.players.append(conn)
