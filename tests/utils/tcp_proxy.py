"""A TCP relay on loopback that a test can partition: the network between matchwise and
a real server, not a fake of the server.

``partition()`` turns it into a black hole: connections stay open but every byte in
either direction is dropped, as on a cut link (a paused server would instead run the
queued commands when it wakes). ``heal()`` closes what was open during the partition
and relays again.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.utils.live_server import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()

    def partition(self) -> None:
        self._cut.set()

    def heal(self) -> None:
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:  # what was open across the cut is broken for good
            with contextlib.suppress(OSError):
                sock.close()
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.heal()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._cut.is_set():
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()
