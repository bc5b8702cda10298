"""The IMAP session against a real Dovecot: what is taken, what is marked read, and failures.

Messages are delivered in order into a fresh mailbox, so the n-th delivered message has
UID n (tests/test_dovecot_fixture.py checks that) and carries Message-ID <n.test@...>.
"""

import dataclasses
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from usedesk_email.mail.drain import drain
from usedesk_email.mail.errors import (
	AuthenticationError,
	ConfigError,
	MailConnectionError,
	MailTimeoutError,
	ProtocolError,
	TLSError,
)
from usedesk_email.mail.imap_session import (
	FetchedMessage,
	ImapSession,
	ImapSettings,
	append_to_sent,
	check_connection,
	plan_batches,
)
from usedesk_email.mail.parse import parse_message
from usedesk_email.testing.dovecot import Mailbox
from usedesk_email.testing.tcp_proxy import BlackHoleServer, TcpProxy

SEEN = "\\Seen"


def make_message(n: int, *, body_bytes: int = 0) -> bytes:
	"""A small CRLF message; ``body_bytes`` of filler make it bigger."""
	filler = "".join(f"{'x' * 78}\r\n" for _ in range(body_bytes // 80))
	return (
		f"From: Client {n} <client{n}@example.com>\r\n"
		f"To: support@example.com\r\n"
		f"Subject: Question {n}\r\n"
		f"Message-ID: <{n}.test@usedesk.invalid>\r\n"
		f"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
		f"\r\n"
		f"Hello, this is message {n}.\r\n{filler}"
	).encode()


def number_of(message: FetchedMessage) -> int:
	return int(re.search(rb"Message-ID: <(\d+)\.test@", message.raw).group(1))


def fill(mailbox: Mailbox, numbers, *, seen: bool = False, body_bytes: int = 0) -> None:
	for n in numbers:
		mailbox.server.deliver(mailbox.user, make_message(n, body_bytes=body_bytes), seen=seen)


def settings_for(
	mailbox: Mailbox, security: str = "none", port: int | None = None, **overrides
) -> ImapSettings:
	server = mailbox.server
	default_port = server.ssl_port if security == "ssl" else server.plain_port
	values = {
		"host": server.host,
		"port": port if port is not None else default_port,
		"security": security,
		"username": mailbox.user,
		"password": mailbox.password,
		"ca_file": str(server.ca_file),
		"connect_timeout": 5.0,
		"read_timeout": 5.0,
	}
	values.update(overrides)
	return ImapSettings(**values)


def seen_uids(mailbox: Mailbox) -> set[int]:
	return {uid for uid, flags in mailbox.server.flags(mailbox.user).items() if SEEN in flags}


def acknowledge_all(message: FetchedMessage) -> bool:
	return True


# -- what is taken and what is marked read ---------------------------------------------


def test_only_unread_mail_is_taken_and_read_mail_is_untouched(mailbox):
	for n in range(1, 9):
		fill(mailbox, [n], seen=n % 3 == 0)  # 3 and 6 were read in a mail client
	before = mailbox.server.flags(mailbox.user)
	handled = []

	result = drain(settings_for(mailbox), lambda m: handled.append(number_of(m)) or True)

	assert handled == [1, 2, 4, 5, 7, 8]
	assert (result.unseen, result.fetched, result.acknowledged, result.marked_seen) == (6, 6, 6, 6)
	assert (result.remaining, result.out_of_time) == (0, False)
	after = mailbox.server.flags(mailbox.user)
	assert after[3] == before[3] == {SEEN}
	assert after[6] == before[6] == {SEEN}
	assert all(after[uid] == {SEEN} for uid in (1, 2, 4, 5, 7, 8))


def test_seen_is_set_only_after_acknowledgement(mailbox):
	fill(mailbox, range(1, 7))
	seen_while_handling = {}

	def handle(message: FetchedMessage) -> bool:
		# Fetching must not have marked it: the caller has not committed yet.
		seen_while_handling[message.uid] = SEEN in mailbox.server.flags(mailbox.user)[message.uid]
		return message.uid % 2 == 1  # even ones "failed to commit"

	result = drain(settings_for(mailbox), handle, batch_size=2)

	assert seen_while_handling == dict.fromkeys(range(1, 7), False)
	assert (result.fetched, result.acknowledged, result.marked_seen) == (6, 3, 3)
	assert seen_uids(mailbox) == {1, 3, 5}
	again = drain(settings_for(mailbox), acknowledge_all)
	assert again.unseen == 3
	assert seen_uids(mailbox) == set(range(1, 7))


def test_exception_in_handle_leaves_that_message_and_later_ones_unread(mailbox):
	fill(mailbox, range(1, 6))

	def handle(message: FetchedMessage) -> bool:
		if message.uid == 3:
			raise RuntimeError("database is gone")
		return True

	with pytest.raises(RuntimeError, match="database is gone"):
		drain(settings_for(mailbox), handle, batch_size=10)

	assert seen_uids(mailbox) == {1, 2}


def test_with_a_commit_per_batch_nothing_is_marked_before_the_commit(mailbox):
	fill(mailbox, range(1, 8))
	events = []

	def handle(message: FetchedMessage) -> bool:
		events.append(("handle", message.uid, SEEN in mailbox.server.flags(mailbox.user)[message.uid]))
		return True

	def commit() -> None:
		events.append(("commit", sorted(seen_uids(mailbox))))

	result = drain(settings_for(mailbox), handle, batch_size=3, commit=commit)

	assert [e for e in events if e[0] == "commit"] == [
		("commit", []),
		("commit", [1, 2, 3]),
		("commit", [1, 2, 3, 4, 5, 6]),
	]
	assert not any(e[2] for e in events if e[0] == "handle")
	assert (result.acknowledged, result.marked_seen) == (7, 7)
	assert seen_uids(mailbox) == set(range(1, 8))


@pytest.mark.parametrize("prepare", [None, parse_message], ids=["in-process", "fetch worker"])
def test_with_a_commit_per_batch_a_failure_marks_nothing_of_that_batch(mailbox, prepare):
	fill(mailbox, range(1, 8))

	def handle(message: FetchedMessage) -> bool:
		if message.uid == 5:
			raise RuntimeError("deadlock: the transaction was rolled back")
		return True

	with pytest.raises(RuntimeError, match="deadlock"):
		drain(settings_for(mailbox), handle, batch_size=3, commit=lambda: None, prepare=prepare)
	assert seen_uids(mailbox) == {1, 2, 3}, "4 was handled but never committed"

	def failing_commit() -> None:
		raise RuntimeError("commit failed")

	with pytest.raises(RuntimeError, match="commit failed"):
		drain(settings_for(mailbox), acknowledge_all, batch_size=3, commit=failing_commit, prepare=prepare)
	assert seen_uids(mailbox) == {1, 2, 3}


@pytest.mark.parametrize("prepare", [None, parse_message], ids=["in-process", "fetch worker"])
def test_begin_batch_sees_each_batch_before_its_messages_and_its_failure_marks_nothing(mailbox, prepare):
	fill(mailbox, range(1, 8))
	events = []

	def begin_batch(batch: list[FetchedMessage]) -> None:
		events.append(("batch", [m.uid for m in batch], [m.prepared is not None for m in batch]))

	def handle(message: FetchedMessage) -> bool:
		events.append(("handle", message.uid))
		return True

	drain(
		settings_for(mailbox),
		handle,
		batch_size=3,
		commit=lambda: None,
		prepare=prepare,
		begin_batch=begin_batch,
	)
	batches = [e[1] for e in events if e[0] == "batch"]
	assert [uid for batch in batches for uid in batch] == list(range(1, 8))
	for batch in batches:  # every batch is seen before its first message is handled
		assert events.index(("batch", batch, [prepare is not None] * len(batch))) + 1 == events.index(
			("handle", batch[0])
		)

	fill(mailbox, range(8, 11))

	def failing_begin(batch: list[FetchedMessage]) -> None:
		raise RuntimeError("lookup failed")

	with pytest.raises(RuntimeError, match="lookup failed"):
		drain(
			settings_for(mailbox),
			acknowledge_all,
			commit=lambda: None,
			prepare=prepare,
			begin_batch=failing_begin,
		)
	assert seen_uids(mailbox) == set(range(1, 8))


KILLER = """
import json, os, signal, sys
from usedesk_email.mail.drain import drain
from usedesk_email.mail.imap_session import ImapSettings
from usedesk_email.mail.parse import parse_message

args = json.loads(sys.argv[1])

def handle(message):
	if message.uid == args["kill_at"]:
		print("killing at", message.uid, flush=True)
		os.kill(os.getpid(), signal.SIGKILL)
	return True

drain(ImapSettings(**args["settings"]), handle, batch_size=1, prepare=parse_message if args["worker"] else None)
"""


def drain_killed_at_message_3_of_4(mailbox, *, worker: bool) -> ImapSettings:
	"""A process draining 4 messages one by one, killed (SIGKILL) while handling the third."""
	fill(mailbox, range(1, 5))
	settings = settings_for(mailbox)
	args = {"kill_at": 3, "settings": dataclasses.asdict(settings), "worker": worker}

	done = subprocess.run(
		[sys.executable, "-c", KILLER, json.dumps(args)], capture_output=True, text=True, timeout=60
	)

	assert done.returncode == -signal.SIGKILL, done.stderr
	assert "killing at 3" in done.stdout
	return settings


def test_killed_process_before_acknowledgement_leaves_message_unread(mailbox):
	settings = drain_killed_at_message_3_of_4(mailbox, worker=False)

	assert seen_uids(mailbox) == {1, 2}
	assert drain(settings, acknowledge_all).unseen == 2


def test_connection_dropped_mid_fetch_marks_nothing_of_that_batch(mailbox):
	fill(mailbox, range(1, 7), body_bytes=20_000)
	handled = []
	with TcpProxy(mailbox.server.host, mailbox.server.plain_port) as proxy:

		def handle(message: FetchedMessage) -> bool:
			if not handled:
				# Cut a few KB into the next server answers: the next batch's FETCH.
				proxy.cut_after(4096)
			handled.append(message.uid)
			return True

		with pytest.raises(MailConnectionError) as caught:
			drain(settings_for(mailbox, port=proxy.port), handle, batch_size=2)

	assert proxy.cuts == 1
	assert f"127.0.0.1:{proxy.port}" in str(caught.value)
	assert handled == [1, 2]
	assert seen_uids(mailbox) == {1, 2}


def test_server_hanging_mid_fetch_times_out_and_marks_nothing_of_that_batch(mailbox):
	fill(mailbox, range(1, 5), body_bytes=20_000)
	with TcpProxy(mailbox.server.host, mailbox.server.plain_port) as proxy:

		def handle(message: FetchedMessage) -> bool:
			proxy.stall_after(4096)
			return True

		started = time.monotonic()
		with pytest.raises(MailTimeoutError, match="no answer within 1 s"):
			drain(settings_for(mailbox, port=proxy.port, read_timeout=1.0), handle, batch_size=2)
		assert time.monotonic() - started < 10

	assert seen_uids(mailbox) == {1, 2}


def test_uidvalidity_change_is_reported_and_unread_mail_still_taken(mailbox):
	fill(mailbox, [1, 2])
	first = drain(settings_for(mailbox), acknowledge_all)
	assert first.uidvalidity_changed is False

	same = drain(settings_for(mailbox), acknowledge_all, known_uidvalidity=first.uidvalidity)
	assert (same.uidvalidity, same.uidvalidity_changed, same.unseen) == (first.uidvalidity, False, 0)

	mailbox.server.reset_uidvalidity(mailbox.user)
	fill(mailbox, [3])
	handled = []
	changed = drain(
		settings_for(mailbox),
		lambda m: handled.append(number_of(m)) or True,
		known_uidvalidity=first.uidvalidity,
	)

	assert changed.uidvalidity_changed is True
	assert changed.uidvalidity != first.uidvalidity
	assert handled == [3]
	assert len(seen_uids(mailbox)) == 3


# -- batches, backlog and time budget ---------------------------------------------------


def test_plan_batches_bounds_count_and_bytes_and_isolates_an_oversized_message():
	sizes = [(1, 10), (2, 10), (3, 10), (4, 10), (5, 500), (6, 40), (7, 40), (8, 30)]

	assert plan_batches(sizes, batch_size=3, batch_bytes=100) == [[1, 2, 3], [4], [5], [6, 7], [8]]
	assert plan_batches(sizes, batch_size=50, batch_bytes=10_000) == [[1, 2, 3, 4, 5, 6, 7, 8]]
	assert plan_batches([], batch_size=5, batch_bytes=5) == []


def test_fetch_batches_respect_count_and_bytes_and_never_set_seen(mailbox):
	fill(mailbox, range(1, 11), body_bytes=3_000)
	fill(mailbox, [11], body_bytes=40_000)  # larger than a whole batch
	fill(mailbox, range(12, 16), body_bytes=3_000)

	with ImapSession(settings_for(mailbox)) as session:
		session.select()
		uids = session.unseen_uids()
		batches = list(session.fetch_batches(uids, batch_size=3, batch_bytes=10_000))

	sizes = [[m.size for m in batch] for batch in batches]
	assert [m.uid for batch in batches for m in batch] == list(range(1, 16))
	assert all(len(batch) <= 3 for batch in sizes)
	assert all(sum(batch) <= 10_000 or len(batch) == 1 for batch in sizes)
	assert [len(batch) for batch in sizes] == [3, 3, 3, 1, 1, 3, 1]
	assert sizes[4][0] > 40_000
	assert all(m.raw.startswith(b"From: Client") and len(m.raw) == m.size for b in batches for m in b)
	assert seen_uids(mailbox) == set()


def test_backlog_of_5000_messages_drains_in_bounded_batches(mailbox):
	total, batch_size, batch_bytes = 5000, 50, 64 * 1024
	# The first 1000 are tiny (the count bound cuts their batches), the rest vary in size
	# (the byte bound does).
	for n in range(1, total + 1):
		fill(mailbox, [n], body_bytes=0 if n <= 1000 else 800 * (n % 7))
	fill(mailbox, range(total + 1, total + 101), seen=True)
	handled: list[tuple[int, int]] = []

	started = time.monotonic()
	result = drain(
		settings_for(mailbox),
		lambda m: handled.append((m.uid, m.size)) or True,
		batch_size=batch_size,
		batch_bytes=batch_bytes,
	)
	elapsed = time.monotonic() - started

	plan = plan_batches(handled, batch_size, batch_bytes)
	assert [uid for uid, _size in handled] == list(range(1, total + 1))
	assert (result.unseen, result.fetched, result.acknowledged, result.marked_seen) == (total,) * 4
	assert result.remaining == 0 and not result.out_of_time
	assert result.batches == len(plan) > total // batch_size
	assert max(len(batch) for batch in plan) == batch_size
	assert result.largest_batch_bytes <= batch_bytes
	assert seen_uids(mailbox) == set(range(1, total + 101))
	assert elapsed < 60, f"draining {total} messages took {elapsed:.1f} s"


def test_time_budget_stops_early_and_the_next_drain_finishes(mailbox):
	fill(mailbox, range(1, 121))
	now = [0.0]

	def slow_handle(message: FetchedMessage) -> bool:
		now[0] += 1.0  # each message "takes" a second of the fake clock
		return True

	first = drain(settings_for(mailbox), slow_handle, time_budget=45, batch_size=10, clock=lambda: now[0])

	assert first.out_of_time is True
	assert (first.fetched, first.marked_seen, first.remaining) == (45, 45, 75)
	assert seen_uids(mailbox) == set(range(1, 46))

	second = drain(settings_for(mailbox), acknowledge_all, batch_size=10)

	assert (second.unseen, second.fetched, second.remaining, second.out_of_time) == (75, 75, 0, False)
	assert seen_uids(mailbox) == set(range(1, 121))


# -- logging in, TLS and timeouts -------------------------------------------------------


def test_wrong_password_is_an_authentication_error_without_the_password(mailbox):
	wrong = "Wr0ng-Pa55word-for-test"

	with pytest.raises(AuthenticationError) as caught:
		check_connection(settings_for(mailbox, password=wrong))

	text = str(caught.value)
	assert wrong not in text and wrong not in repr(caught.value)
	assert f"127.0.0.1:{mailbox.server.plain_port}" in text and mailbox.user in text
	assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_rejected_oauth2_token_is_an_authentication_error_without_the_token(mailbox):
	token = "ya29.secret-token-value"

	with pytest.raises(AuthenticationError) as caught:
		check_connection(settings_for(mailbox, password="", oauth2_token=token))

	assert token not in str(caught.value)


def test_settings_repr_hides_secrets(mailbox):
	settings = settings_for(mailbox, oauth2_token="tok-123")

	assert mailbox.password not in repr(settings) and "tok-123" not in repr(settings)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_self_signed_ca_is_refused_unless_given(mailbox, security):
	server = mailbox.server
	target = server.ssl_port if security == "ssl" else server.plain_port
	with TcpProxy(server.host, target) as proxy:
		with pytest.raises(TLSError, match=r"not trusted .*Trusted CA Certificate \(PEM\)") as caught:
			check_connection(settings_for(mailbox, security, port=proxy.port, ca_file=None))
		assert mailbox.password.encode() not in proxy.client_data
	assert f"127.0.0.1:{proxy.port}" in str(caught.value)

	report = check_connection(settings_for(mailbox, security))

	assert report.messages == 0 and report.unseen == 0


def test_starttls_is_refused_when_the_server_does_not_offer_it(mailbox):
	server = mailbox.server
	with TcpProxy(server.host, server.no_tls_port) as proxy:
		with pytest.raises(TLSError, match="does not offer STARTTLS"):
			check_connection(settings_for(mailbox, "starttls", port=proxy.port))

	assert b"LOGIN" not in proxy.client_data.upper()
	assert mailbox.password.encode() not in proxy.client_data


def test_plain_login_works_without_encryption(mailbox):
	fill(mailbox, [1])

	assert check_connection(settings_for(mailbox, "none", port=mailbox.server.no_tls_port)).unseen == 1
	assert check_connection(settings_for(mailbox, "none")).unseen == 1


def test_ssl_against_a_plain_listener_says_to_choose_starttls(mailbox):
	port = mailbox.server.plain_port
	with pytest.raises(TLSError, match=f"expects STARTTLS on port {port}, not SSL: choose STARTTLS"):
		check_connection(settings_for(mailbox, "ssl", port=port))


@pytest.mark.parametrize("security", ["none", "ssl", "starttls"])
def test_server_that_never_answers_times_out(mailbox, security):
	with BlackHoleServer() as hole:
		settings = settings_for(mailbox, security, port=hole.port, connect_timeout=1.0, read_timeout=1.0)
		started = time.monotonic()
		with pytest.raises(MailTimeoutError, match=f"127.0.0.1:{hole.port}"):
			check_connection(settings)
		elapsed = time.monotonic() - started

	assert hole.accepted == 1
	assert 0.9 < elapsed < 3.0


def test_refused_connection_is_a_connection_error(mailbox):
	with BlackHoleServer() as closed:
		port = closed.port
	with pytest.raises(MailConnectionError, match="refused") as caught:
		check_connection(settings_for(mailbox, port=port))
	assert not isinstance(caught.value, MailTimeoutError)


def test_missing_folder_is_a_protocol_error(mailbox):
	with pytest.raises(ProtocolError, match="No-Such-Folder"):
		check_connection(settings_for(mailbox, folder="No-Such-Folder"))


# -- settings and the connection check --------------------------------------------------


@pytest.mark.parametrize(
	("overrides", "message"),
	[
		({"host": " "}, "host"),
		({"port": 0}, "port"),
		({"port": 70000}, "port"),
		({"port": "993"}, "port"),
		({"security": "tls"}, "encryption"),
		({"username": ""}, "username"),
		({"password": "", "oauth2_token": ""}, "password"),
		({"ca_file": "/nonexistent/ca.pem"}, "CA bundle"),
		({"connect_timeout": 0}, "timeout"),
		({"folder": ""}, "folder"),
	],
)
def test_bad_settings_are_config_errors(mailbox, overrides, message):
	with pytest.raises(ConfigError, match=message):
		settings_for(mailbox, **overrides)


def test_security_is_case_insensitive(mailbox):
	assert settings_for(mailbox, "STARTTLS").security == "starttls"


@pytest.mark.parametrize(
	"limits", [{"batch_size": 0}, {"batch_bytes": -1}, {"time_budget": 0}, {"batch_size": 2.5}]
)
def test_bad_drain_limits_are_config_errors(mailbox, limits):
	with pytest.raises(ConfigError):
		drain(settings_for(mailbox), acknowledge_all, **limits)


def test_check_connection_reports_counts_and_changes_nothing(mailbox):
	fill(mailbox, range(1, 4))
	fill(mailbox, range(4, 6), seen=True)
	before = mailbox.server.flags(mailbox.user)

	report = check_connection(settings_for(mailbox, "starttls"))

	assert (report.messages, report.unseen) == (5, 3)
	assert report.uidvalidity == mailbox.server.uidvalidity(mailbox.user)
	assert "IMAP4REV1" in report.capabilities
	assert report.sent_folder is None, "no folder is marked \\Sent yet"
	assert mailbox.server.flags(mailbox.user) == before


# -- saving sent letters to the Sent folder ---------------------------------------------


def test_sent_folder_is_found_by_its_special_use_attribute_and_the_letter_appended_read(mailbox):
	mailbox.server.create_folder(mailbox.user, "Sent")
	mailbox.server.create_folder(mailbox.user, "Archive")
	with ImapSession(settings_for(mailbox)) as session:
		assert session.sent_folder() == "Sent"
		assert {"INBOX", "Sent", "Archive"} <= set(session.list_folder_names())

	assert append_to_sent(settings_for(mailbox), make_message(1), folder="Archive") == "Sent"

	assert mailbox.server.messages(mailbox.user, "Sent") == [make_message(1)]
	assert list(mailbox.server.flags(mailbox.user, "Sent").values()) == [{SEEN}]
	assert mailbox.server.messages(mailbox.user, "Archive") == []
	assert check_connection(settings_for(mailbox)).sent_folder == "Sent"


def test_without_a_special_use_sent_folder_the_given_folder_is_used(mailbox):
	mailbox.server.create_folder(mailbox.user, "Gesendet")
	with ImapSession(settings_for(mailbox)) as session:
		assert session.sent_folder() is None, "a folder is not Sent by its name"

	assert append_to_sent(settings_for(mailbox), make_message(2), folder="Gesendet") == "Gesendet"
	assert list(mailbox.server.flags(mailbox.user, "Gesendet").values()) == [{SEEN}]


def test_no_sent_folder_at_all_is_a_config_error_and_a_missing_one_a_protocol_error(mailbox):
	with pytest.raises(ConfigError, match="Sent"):
		append_to_sent(settings_for(mailbox), make_message(3))
	with pytest.raises(ProtocolError, match="Nowhere"):
		append_to_sent(settings_for(mailbox), make_message(3), folder="Nowhere")
