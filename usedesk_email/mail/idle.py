"""IMAP IDLE (RFC 2177): the server says the moment mail arrives, so it can be fetched at once.

`IdleSession` is an `ImapSession` that can IDLE: it logs in, checks that the server offers
IDLE, opens the folder read-only and waits for the server's notices (EXISTS, EXPUNGE, BYE).
`Watcher` keeps one mailbox in IDLE from a thread of its own and reports what happens to a
callback: it never fetches, stores or marks anything (the caller's poll does that), so
exactly-once ingestion stays where it is. It re-issues IDLE before servers drop idle
clients (RFC 2177: after 30 minutes), reconnects after a drop with growing pauses, and
waits after a refused login or unusable settings until the caller gives new ones.
"""

from __future__ import annotations

import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from usedesk_email.mail.errors import (
	AuthenticationError,
	ConfigError,
	MailConnectionError,
	MailError,
	ProtocolError,
	redact,
)
from usedesk_email.mail.imap_session import ImapSession, ImapSettings

IDLE_RENEW = 24 * 60.0  # seconds in one IDLE command; RFC 2177 allows servers to end it after 29 min
FIRST_RETRY = 1.0  # seconds before reconnecting after a drop; doubles up to MAX_RETRY
MAX_RETRY = 300.0
STABLE = 60.0  # a connection that lasted this long resets the pauses to FIRST_RETRY
NO_IDLE_RECHECK = 3600.0  # a server without IDLE is asked again after this long
# A peer that vanished without closing (a dead NAT entry) is noticed by TCP keepalives.
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 20, "TCP_KEEPCNT": 3}
_HANGUP = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)

# What a Watcher reports.
LIVE = "live"  # logged in and idling: new mail is announced from now on
MAIL = "mail"  # the folder has mail to fetch (announced, or unread when the connection began)
DROPPED = "dropped"  # the connection failed or ended; the watcher reconnects by itself
NO_IDLE = "no_idle"  # the server does not offer IDLE; asked again after NO_IDLE_RECHECK
FAILED = "failed"  # login refused or settings unusable; the watcher waits for reconnect()


@dataclass(frozen=True)
class Notice:
	"""One untagged response received while idling: ``EXISTS`` (with the message count),
	``EXPUNGE`` (with the message number), ``RECENT``, ``FETCH`` (flags changed)..."""

	kind: str
	number: int | None = None


class NoIdleError(MailError):
	"""The server does not offer IDLE."""


class IdleSession(ImapSession):
	"""An ImapSession that waits in IDLE; use as a context manager, like ImapSession."""

	def supports_idle(self) -> bool:
		return "IDLE" in (c.upper() for c in self.capabilities())

	def watch_folder(self) -> bool:
		"""Open the folder read-only (EXAMINE: the listener never changes a flag); returns
		whether it holds unread mail."""
		if not self.supports_idle():
			raise NoIdleError(f"IMAP {self.settings.address} does not offer IDLE")
		self.select(readonly=True)
		self._keep_alive()
		return self.has_unseen

	def begin_idle(self) -> list[Notice]:
		"""Enter IDLE; returns the notices a server sent before it agreed. No other command may
		come between the SELECT and this: a notice in its answer would be lost to imapclient."""
		client = self._require_client()
		imap = client._imap  # imapclient's idle() raises on a notice before the "+ idling"
		notices = []
		with self._guard("starting IDLE"):
			tag = imap._command("IDLE")
			while (line := imap._get_response()) is not None:
				if imap.tagged_commands.get(tag):
					raise ProtocolError(f"IMAP {self.settings.address}: the server refused IDLE ({line!r})")
				notices.append(_notice_line(line))
			client._idle_tag = tag
			imap.untagged_responses.clear()  # what imaplib kept of them, so nothing piles up
		return notices

	def wait(self, timeout: float, wake_fd: int | None = None) -> list[Notice] | None:
		"""Notices received within ``timeout`` seconds ([] when none came); None as soon as
		``wake_fd`` becomes readable. A BYE or a closed connection raises MailConnectionError."""
		client = self._require_client()
		poller = select.poll()
		sock = client.socket()
		poller.register(sock.fileno(), select.POLLIN | _HANGUP)
		if wake_fd is not None:
			poller.register(wake_fd, select.POLLIN)
		try:
			ready = dict(poller.poll(max(0, int(timeout * 1000))))
		except InterruptedError:
			return []
		if wake_fd is not None and wake_fd in ready:
			return None
		events = ready.get(sock.fileno(), 0)
		notices = []
		if events & select.POLLIN:
			with self._guard("waiting in IDLE"):
				notices = [_notice(response) for response in client.idle_check(timeout=0)]
		bye = [n for n in notices if n.kind == "BYE"]
		if bye or events & _HANGUP:
			self._broken = True
			said = " (it said BYE)" if bye else ""
			raise MailConnectionError(f"IMAP {self.settings.address}: the server closed the connection{said}")
		return notices

	def end_idle(self) -> list[Notice]:
		"""Leave IDLE (DONE); returns the notices that came before the server confirmed."""
		client = self._require_client()
		with self._guard("ending IDLE"):
			_text, responses = client.idle_done()
			client._imap.untagged_responses.clear()
		return [_notice(response) for response in responses]

	def _keep_alive(self) -> None:
		"""TCP keepalives on the connection, where the system offers them."""
		sock = self._require_client().socket()
		try:
			sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
			for name, value in KEEPALIVE.items():
				if hasattr(socket, name):
					sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
		except OSError:
			pass


class Watcher:
	"""One mailbox kept in IDLE by a daemon thread; ``report(kind, error)`` hears about it.

	``report`` runs in the watcher's thread with one of LIVE, MAIL, DROPPED, NO_IDLE, FAILED
	and the MailError behind DROPPED and FAILED (None otherwise). After FAILED it does nothing
	until ``reconnect`` gives new settings (a fresh token, a corrected password) or ``stop``.
	"""

	def __init__(
		self,
		settings: ImapSettings,
		report: Callable[[str, MailError | None], None],
		*,
		renew: float = IDLE_RENEW,
		name: str = "",
	) -> None:
		self._settings = settings
		self._report = report
		self._renew = renew
		self._name = name or settings.address
		self._lock = threading.Lock()
		self._stopping = False
		self._wake_r, self._wake_w = os.pipe()
		os.set_blocking(self._wake_r, False)
		self._thread: threading.Thread | None = None

	@property
	def running(self) -> bool:
		return self._thread is not None and self._thread.is_alive()

	def start(self) -> Watcher:
		with self._lock:
			if self._thread is None and not self._stopping:
				self._thread = threading.Thread(target=self._run, name=f"idle {self._name}", daemon=True)
				self._thread.start()
		return self

	def reconnect(self, settings: ImapSettings) -> None:
		"""Connect again with these settings, ending the current connection or pause."""
		with self._lock:
			self._settings = settings
		self._wake()

	def stop(self, wait: float = 5.0) -> None:
		"""End the connection (DONE, LOGOUT) and the thread; waits at most ``wait`` seconds
		(0: not at all, the thread ends by itself)."""
		with self._lock:
			self._stopping = True
			thread = self._thread
		self._wake()
		if thread is None:
			self._close_pipe()
		else:
			self.join(wait)

	def join(self, timeout: float) -> None:
		if self._thread is not None and self._thread is not threading.current_thread():
			self._thread.join(timeout)

	def _run(self) -> None:
		try:
			self._watch()
		finally:
			self._close_pipe()

	def _watch(self) -> None:
		delay = FIRST_RETRY
		while not self._stopping:
			with self._lock:
				settings = self._settings
			began = time.monotonic()
			try:
				self._session(settings)
				delay = FIRST_RETRY
			except (AuthenticationError, ConfigError) as error:
				self._report(FAILED, error)
				self._pause(None)
				delay = FIRST_RETRY
			except NoIdleError:
				self._report(NO_IDLE, None)
				self._pause(NO_IDLE_RECHECK)
			except MailError as error:
				if self._stopping:
					return
				self._report(DROPPED, error)
				if time.monotonic() - began >= STABLE:
					delay = FIRST_RETRY
				self._pause(delay * random.uniform(0.8, 1.2))
				delay = min(delay * 2, MAX_RETRY)
			except Exception as error:  # a bug must not end the thread silently
				detail = redact(f"{type(error).__name__}: {error}", *settings.secrets)
				self._report(DROPPED, MailError(f"IMAP {settings.address}: {detail}"))
				self._pause(MAX_RETRY)

	def _session(self, settings: ImapSettings) -> None:
		"""One connection, until a wake-up (stop or new settings) or a failure."""
		with IdleSession(settings) as session:
			unseen = session.watch_folder()
			self._report(LIVE, None)
			if unseen:  # mail that came while nobody listened
				self._report(MAIL, None)
			while True:
				self._announce(session.begin_idle())
				renew_at = time.monotonic() + self._renew
				while (remaining := renew_at - time.monotonic()) > 0:
					notices = session.wait(remaining, self._wake_r)
					if notices is None:
						self._drain_wake()
						session.end_idle()
						return
					self._announce(notices)
				self._announce(session.end_idle())

	def _announce(self, notices: list[Notice]) -> None:
		if any(n.kind == "EXISTS" for n in notices):
			self._report(MAIL, None)

	def _pause(self, seconds: float | None) -> None:
		"""Sleep (None: until woken), but wake up for stop() and reconnect()."""
		poller = select.poll()  # not select(): a listener has more than 1024 descriptors
		poller.register(self._wake_r, select.POLLIN)
		try:
			ready = poller.poll(None if seconds is None else int(seconds * 1000))
		except InterruptedError:
			return
		if ready:
			self._drain_wake()

	def _wake(self) -> None:
		with self._lock:  # never a descriptor number closed meanwhile, maybe reused
			if self._wake_w < 0:
				return
			try:
				os.write(self._wake_w, b"x")
			except OSError:
				pass

	def _drain_wake(self) -> None:
		try:
			while os.read(self._wake_r, 64):
				pass
		except OSError:  # BlockingIOError: nothing (more) to read
			pass

	def _close_pipe(self) -> None:
		with self._lock:
			descriptors, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
		for fd in descriptors:
			if fd >= 0:
				os.close(fd)


def _notice(response: tuple) -> Notice:
	"""imapclient's parsed untagged response, e.g. ``(3, b'EXISTS')`` or ``(b'BYE', b'...')``."""
	if response and isinstance(response[0], int) and len(response) > 1:
		return Notice(_kind(response[1]), response[0])
	return Notice(_kind(response[0]) if response else "")


def _notice_line(line: bytes) -> Notice:
	"""A raw untagged line, e.g. ``* 3 EXISTS``."""
	words = line[2:].split(b" ", 2) if line.startswith(b"* ") else [b""]
	if words[0].isdigit() and len(words) > 1:
		return Notice(_kind(words[1]), int(words[0]))
	return Notice(_kind(words[0]))


def _kind(value: object) -> str:
	return (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).upper()
