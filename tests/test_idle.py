"""IMAP IDLE against a real Dovecot: notices, drops, renewals, refused logins, servers without IDLE."""

import itertools
import os
import queue
import time

import pytest

from usedesk_email.mail import idle
from usedesk_email.mail.errors import AuthenticationError, MailConnectionError
from usedesk_email.mail.idle import DROPPED, FAILED, LIVE, MAIL, NO_IDLE, IdleSession, Watcher
from usedesk_email.mail.imap_session import ImapSettings
from usedesk_email.testing.dovecot import DovecotServer, Mailbox
from usedesk_email.testing.tcp_proxy import TcpProxy

MESSAGE = b"From: Client <client@example.org>\r\nSubject: Help\r\n\r\nHello.\r\n"


def settings(mailbox: Mailbox, **changes) -> ImapSettings:
	server = mailbox.server
	values = {
		"host": server.host,
		"port": server.ssl_port,
		"security": "ssl",
		"username": mailbox.user,
		"password": mailbox.password,
		"ca_file": str(server.ca_file),
		"read_timeout": 10.0,
		**changes,
	}
	return ImapSettings(**values)


class Reports:
	"""What a Watcher reported, in order, for a test to wait on."""

	def __init__(self) -> None:
		self.queue: queue.Queue = queue.Queue()
		self.seen: list[tuple[str, object, float]] = []

	def __call__(self, kind: str, error) -> None:
		self.queue.put((kind, error, time.monotonic()))

	def wait_for(self, kind: str, timeout: float = 15.0):
		deadline = time.monotonic() + timeout
		while (left := deadline - time.monotonic()) > 0:
			try:
				report = self.queue.get(timeout=left)
			except queue.Empty:
				break
			self.seen.append(report)
			if report[0] == kind:
				return report
		raise AssertionError(f"no {kind!r} within {timeout} s; reported: {[r[0] for r in self.seen]}")

	def kinds_within(self, seconds: float) -> list[str]:
		deadline = time.monotonic() + seconds
		kinds = []
		while (left := deadline - time.monotonic()) > 0:
			try:
				report = self.queue.get(timeout=left)
			except queue.Empty:
				break
			self.seen.append(report)
			kinds.append(report[0])
		return kinds


@pytest.fixture
def watch():
	"""Start Watchers; every one is stopped at the end of the test."""
	watchers = []

	def start(connection: ImapSettings, **options) -> tuple[Watcher, Reports]:
		reports = Reports()
		watcher = Watcher(connection, reports, **options).start()
		watchers.append(watcher)
		return watcher, reports

	yield start
	for watcher in watchers:
		watcher.stop()


def test_a_delivery_is_announced_while_idling(mailbox: Mailbox):
	with IdleSession(settings(mailbox)) as session:
		assert session.supports_idle()
		session.watch_folder()
		session.begin_idle()
		assert session.wait(0.3) == [], "nothing happened yet"
		mailbox.server.append(mailbox.user, MESSAGE)
		notices = []
		deadline = time.monotonic() + 10
		while not any(n.kind == "EXISTS" for n in notices) and time.monotonic() < deadline:
			notices += session.wait(deadline - time.monotonic())
		assert idle.Notice("EXISTS", 1) in notices
		session.end_idle()
		assert session.unseen_uids() == [1], "the listener's folder is examined, nothing is marked"
	assert mailbox.server.flags(mailbox.user) == {1: set()}


def test_waiting_ends_at_once_when_woken(mailbox: Mailbox):
	read_end, write_end = os.pipe()
	try:
		with IdleSession(settings(mailbox)) as session:
			session.watch_folder()
			session.begin_idle()
			os.write(write_end, b"x")
			began = time.monotonic()
			assert session.wait(30, read_end) is None
			assert time.monotonic() - began < 5
			session.end_idle()
	finally:
		os.close(read_end)
		os.close(write_end)


@pytest.mark.parametrize("crash", [False, True], ids=["bye", "closed"])
def test_a_server_ending_the_session_raises_a_connection_error(mailbox: Mailbox, crash: bool):
	with IdleSession(settings(mailbox)) as session:
		session.watch_folder()
		session.begin_idle()
		assert mailbox.server.disconnect(mailbox.user, crash=crash) == 1
		with pytest.raises(MailConnectionError, match="closed the connection"):
			deadline = time.monotonic() + 10
			while time.monotonic() < deadline:
				session.wait(deadline - time.monotonic())


def test_the_watcher_reports_live_then_each_delivery(mailbox: Mailbox, watch):
	_watcher, reports = watch(settings(mailbox))
	reports.wait_for(LIVE)
	for _ in range(2):
		mailbox.server.append(mailbox.user, MESSAGE)
		reports.wait_for(MAIL)
	assert mailbox.server.flags(mailbox.user) == {1: set(), 2: set()}, "nothing read by the watcher"


def test_unread_mail_waiting_at_connection_is_reported(mailbox: Mailbox, watch):
	mailbox.server.deliver(mailbox.user, MESSAGE)
	mailbox.server.deliver(mailbox.user, MESSAGE, seen=True)
	_watcher, reports = watch(settings(mailbox))
	reports.wait_for(LIVE)
	reports.wait_for(MAIL, timeout=5)


def test_read_mail_alone_is_not_reported_at_connection(mailbox: Mailbox, watch):
	mailbox.server.deliver(mailbox.user, MESSAGE, seen=True)
	_watcher, reports = watch(settings(mailbox))
	reports.wait_for(LIVE)
	assert MAIL not in reports.kinds_within(2)


@pytest.mark.parametrize("crash", [False, True], ids=["bye", "closed"])
def test_the_watcher_reconnects_after_the_server_drops_it(mailbox: Mailbox, watch, crash: bool):
	_watcher, reports = watch(settings(mailbox))
	reports.wait_for(LIVE)
	assert mailbox.server.disconnect(mailbox.user, crash=crash) == 1
	_kind, error, dropped_at = reports.wait_for(DROPPED)
	assert isinstance(error, MailConnectionError)
	_kind, _error, live_at = reports.wait_for(LIVE)
	assert live_at - dropped_at < 5, "the first retry comes after about a second"
	mailbox.server.append(mailbox.user, MESSAGE)
	reports.wait_for(MAIL)


def test_a_proxy_cut_is_a_drop_and_mail_sent_meanwhile_is_reported(mailbox: Mailbox, watch):
	with TcpProxy(mailbox.server.host, mailbox.server.ssl_port) as proxy:
		_watcher, reports = watch(settings(mailbox, port=proxy.port))
		reports.wait_for(LIVE)
		proxy.cut_after(1)  # the next byte the server sends (the EXISTS) ends the connection
		mailbox.server.append(mailbox.user, MESSAGE)
		reports.wait_for(DROPPED)
		reports.wait_for(LIVE)
		reports.wait_for(MAIL, timeout=5)  # unread at the new connection
		assert proxy.accepted == 2


def test_idle_is_renewed_before_the_server_ends_it(mailbox: Mailbox, watch):
	with TcpProxy(mailbox.server.host, mailbox.server.no_tls_port) as proxy:  # in clear, to read it
		plain = settings(mailbox, port=proxy.port, security="none")
		_watcher, reports = watch(plain, renew=0.5)
		reports.wait_for(LIVE)
		time.sleep(2.5)
		assert proxy.client_data.count(b"DONE\r\n") >= 3, "IDLE ended and began again"
		assert proxy.accepted == 1, "on the same connection"
		mailbox.server.append(mailbox.user, MESSAGE)
		reports.wait_for(MAIL)


def test_a_refused_login_is_reported_once_and_not_retried_until_new_settings(mailbox: Mailbox, watch):
	with TcpProxy(mailbox.server.host, mailbox.server.ssl_port) as proxy:
		wrong = settings(mailbox, port=proxy.port, password="wrong-password-123")
		watcher, reports = watch(wrong)
		_kind, error, _at = reports.wait_for(FAILED)
		assert isinstance(error, AuthenticationError)
		assert "wrong-password-123" not in str(error)
		assert reports.kinds_within(3) == [], "no second attempt on its own"
		assert proxy.accepted == 1
		watcher.reconnect(settings(mailbox, port=proxy.port))
		reports.wait_for(LIVE)
		assert proxy.accepted == 2


def test_reconnect_uses_the_new_settings(mailbox: Mailbox, watch):
	with TcpProxy(mailbox.server.host, mailbox.server.ssl_port) as proxy:
		watcher, reports = watch(settings(mailbox))
		reports.wait_for(LIVE)
		watcher.reconnect(settings(mailbox, port=proxy.port))
		reports.wait_for(LIVE)
		assert proxy.accepted == 1
		assert mailbox.server.sessions(mailbox.user) == 1, "the first connection was logged out"


def test_a_server_without_idle_is_reported(watch):
	with DovecotServer(idle=False) as server:
		box = server.new_mailbox()
		with IdleSession(settings(box)) as session:
			assert not session.supports_idle()
		_watcher, reports = watch(settings(box))
		reports.wait_for(NO_IDLE)
		assert LIVE not in reports.kinds_within(1)


def test_reconnection_pauses_grow(mailbox: Mailbox, watch):
	with TcpProxy(mailbox.server.host, 1) as proxy:  # port 1: nothing listens, each connection ends
		_watcher, reports = watch(settings(mailbox, port=proxy.port))
		times = [reports.wait_for(DROPPED, timeout=20)[2] for _ in range(4)]
	gaps = [b - a for a, b in itertools.pairwise(times)]
	assert 0.7 < gaps[0] < 2.5, gaps
	assert gaps[2] > gaps[0] * 2.5, f"pauses double: {gaps}"


def test_stop_logs_out_and_ends_the_thread(mailbox: Mailbox, watch):
	with TcpProxy(mailbox.server.host, mailbox.server.no_tls_port) as proxy:  # in clear, to read it
		watcher, reports = watch(settings(mailbox, port=proxy.port, security="none"))
		reports.wait_for(LIVE)
		began = time.monotonic()
		watcher.stop()
		assert time.monotonic() - began < 5
		assert not watcher.running
		assert b"DONE\r\n" in proxy.client_data and b"LOGOUT" in proxy.client_data
	deadline = time.monotonic() + 10
	while mailbox.server.sessions(mailbox.user) and time.monotonic() < deadline:
		time.sleep(0.1)
	assert mailbox.server.sessions(mailbox.user) == 0
