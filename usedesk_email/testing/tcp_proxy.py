"""Misbehaving network peers on 127.0.0.1 for the failure tests of the mail sessions.

``TcpProxy`` forwards to a real server and can cut or stall a connection once the server
has sent a given number of bytes (a connection that drops or hangs in the middle of a FETCH).
``BlackHoleServer`` accepts connections and never answers (a server that hangs), so a
client's connect and read timeouts can be tested.

Both run their own threads and stop with ``stop()`` or at the end of a ``with`` block.
"""

from __future__ import annotations

import socket
import threading

from usedesk_email.testing.ports import HOST

_CHUNK = 65536
_POLL = 0.1


class _Listener:
	"""A listening socket on 127.0.0.1 with an accept thread; subclasses handle connections."""

	host = HOST

	def __init__(self) -> None:
		self._server: socket.socket | None = None
		self._sockets: list[socket.socket] = []
		self._threads: list[threading.Thread] = []
		self._lock = threading.Lock()
		self._stopping = threading.Event()
		self.port = 0
		self.accepted = 0

	def __enter__(self):
		return self.start()

	def __exit__(self, *exc_info: object) -> None:
		self.stop()

	def start(self):
		server = socket.create_server((self.host, 0))
		server.settimeout(_POLL)
		self._server = server
		self.port = server.getsockname()[1]
		self._spawn(self._accept_loop)
		return self

	def stop(self) -> None:
		self._stopping.set()
		with self._lock:
			sockets = list(self._sockets)
		for sock in sockets:
			_close(sock)
		for thread in self._threads:
			thread.join(5)
		if self._server is not None:
			self._server.close()
			self._server = None

	def _spawn(self, target, *args) -> None:
		thread = threading.Thread(target=target, args=args, daemon=True)
		with self._lock:
			self._threads.append(thread)
		thread.start()

	def _track(self, sock: socket.socket) -> None:
		with self._lock:
			self._sockets.append(sock)

	def _accept_loop(self) -> None:
		while not self._stopping.is_set():
			try:
				connection, _address = self._server.accept()
			except TimeoutError:
				continue
			except OSError:
				return
			connection.settimeout(None)
			self._track(connection)
			self.accepted += 1
			self._handle(connection)

	def _handle(self, connection: socket.socket) -> None:
		raise NotImplementedError


class BlackHoleServer(_Listener):
	"""Accepts connections and never sends a byte until stopped."""

	def _handle(self, connection: socket.socket) -> None:
		"""Keep the connection open without reading or answering (kept in ``_sockets``)."""


class TcpProxy(_Listener):
	"""Forwards ``host:port`` to ``target_host:target_port``.

	``cut_after(n)`` arms a cut: once the server has sent ``n`` more bytes (counted over
	all connections from that moment), the connection carrying them is closed on both
	sides; nothing beyond those ``n`` bytes reaches the client. ``stall_after(n)`` instead
	keeps the connection open but silently drops everything after those bytes (a server
	that hangs mid-answer). ``cuts`` counts the connections cut or stalled so far,
	``server_bytes`` the bytes passed on from the server, ``client_data`` everything the
	client sent (to check what went over the wire in clear).
	"""

	def __init__(self, target_host: str, target_port: int) -> None:
		super().__init__()
		self.target = (target_host, target_port)
		self._budget: int | None = None
		self._stall = False
		self._stalled: set[int] = set()
		self.cuts = 0
		self.server_bytes = 0
		self.client_data = bytearray()

	def cut_after(self, n: int) -> None:
		self._arm(n, stall=False)

	def stall_after(self, n: int) -> None:
		self._arm(n, stall=True)

	def _arm(self, n: int, *, stall: bool) -> None:
		with self._lock:
			self._budget, self._stall = n, stall

	def _handle(self, connection: socket.socket) -> None:
		try:
			upstream = socket.create_connection(self.target, timeout=10)
		except OSError:
			_close(connection)
			return
		upstream.settimeout(None)
		self._track(upstream)
		self._spawn(self._pump, connection, upstream, False)
		self._spawn(self._pump, upstream, connection, True)

	def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
		try:
			while True:
				data = source.recv(_CHUNK)
				if not data:
					break
				cut = False
				if from_server:
					data, cut = self._take(id(source), data)
				else:
					with self._lock:
						self.client_data += data
				if data:
					sink.sendall(data)
				if cut:
					break
		except OSError:
			pass
		finally:
			_close(source)
			_close(sink)

	def _take(self, connection: int, data: bytes) -> tuple[bytes, bool]:
		"""What may pass of the server's ``data``, and whether to cut the connection after it."""
		with self._lock:
			if connection in self._stalled:
				return b"", False
			if self._budget is None:
				self.server_bytes += len(data)
				return data, False
			allowed = data[: self._budget]
			self._budget -= len(allowed)
			self.server_bytes += len(allowed)
			if self._budget > 0:
				return allowed, False
			self._budget = None
			self.cuts += 1
			if self._stall:
				self._stalled.add(connection)
				return allowed, False
			return allowed, True


def _close(sock: socket.socket) -> None:
	try:
		sock.shutdown(socket.SHUT_RDWR)
	except OSError:
		pass
	sock.close()
