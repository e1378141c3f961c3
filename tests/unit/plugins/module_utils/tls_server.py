# -*- coding: utf-8 -*-
# Copyright: certdeploy.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A loopback TLS server for the probe's tests: serves one certificate, can switch to another."""

from __future__ import annotations

import socket
import ssl
import threading


class LoopbackTlsServer(object):
    """Listens on 127.0.0.1:<free port>; each connection gets the current certificate, then is closed."""

    def __init__(self, cert_file, key_file):
        self.handshakes = 0
        self._context = self._make_context(cert_file, key_file)
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _make_context(cert_file, key_file):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context

    def switch(self, cert_file, key_file):
        with self._lock:
            self._context = self._make_context(cert_file, key_file)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                context = self._context
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    self.handshakes += 1
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def closed_port():
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
