"""drain with ``prepare``: the IMAP side in a worker process, one batch ahead, against a real
Dovecot. The rules are those of the in-process drain (tests/test_imap_session.py)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_imap_session import (
	acknowledge_all,
	drain_killed_at_message_3_of_4,
	fill,
	number_of,
	seen_uids,
	settings_for,
)

from usedesk_email.mail.drain import drain
from usedesk_email.mail.errors import AuthenticationError, MailConnectionError
from usedesk_email.mail.fetch_worker import FIRST_BATCH_SIZE
from usedesk_email.mail.imap_session import FetchedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.testing.tcp_proxy import TcpProxy

WORKER = "usedesk_email.mail.fetch_worker"


def wait_for(condition, seconds: float = 10.0) -> bool:
	deadline = time.monotonic() + seconds
	while time.monotonic() < deadline:
		if condition():
			return True
		time.sleep(0.02)
	return False


def worker_pids() -> list[int]:
	pids = []
	for entry in os.listdir("/proc"):
		if entry.isdigit():
			try:
				with open(f"/proc/{entry}/cmdline", "rb") as f:
					if WORKER.encode() in f.read():
						pids.append(int(entry))
			except OSError:
				pass
	return pids


def test_parsed_messages_come_a_batch_ahead_and_are_marked_only_after_the_commit(mailbox):
	fill(mailbox, range(1, 8))
	events = []
	with TcpProxy(mailbox.server.host, mailbox.server.plain_port) as proxy:

		def fetch_commands() -> int:
			return bytes(proxy.client_data).count(b"BODY.PEEK[]")

		def handle(message: FetchedMessage) -> bool:
			if message.uid == 1:
				# While the first batch is being handled, the worker already asks for the second.
				events.append(("second batch asked for", wait_for(lambda: fetch_commands() >= 2)))
			seen = "\\Seen" in mailbox.server.flags(mailbox.user)[message.uid]
			events.append(("handle", message.uid, message.prepared.message_id, seen))
			return True

		def commit() -> None:
			events.append(("commit", sorted(seen_uids(mailbox))))

		result = drain(
			settings_for(mailbox, port=proxy.port),
			handle,
			batch_size=3,
			commit=commit,
			prepare=parse_message,
		)

	assert events[0] == ("second batch asked for", True)
	handled = [e for e in events if e[0] == "handle"]
	assert [(e[1], e[2]) for e in handled] == [(n, f"{n}.test@usedesk.invalid") for n in range(1, 8)]
	assert not any(e[3] for e in handled)
	assert [e for e in events if e[0] == "commit"] == [
		("commit", []),
		("commit", [1, 2, 3]),
		("commit", [1, 2, 3, 4, 5, 6]),
	]
	assert (result.fetched, result.acknowledged, result.marked_seen, result.batches) == (7, 7, 7, 3)
	assert seen_uids(mailbox) == set(range(1, 8))
	assert wait_for(lambda: not worker_pids()), "the worker outlived the drain"


def test_the_first_batch_is_short_so_the_caller_starts_while_the_rest_is_parsed(mailbox):
	fill(mailbox, range(1, 13))
	commits = []
	result = drain(
		settings_for(mailbox),
		acknowledge_all,
		batch_size=50,
		commit=lambda: commits.append(sorted(seen_uids(mailbox))),
		prepare=parse_message,
	)
	assert FIRST_BATCH_SIZE < 12
	assert commits == [[], list(range(1, FIRST_BATCH_SIZE + 1))]
	assert (result.fetched, result.marked_seen, result.batches) == (12, 12, 2)


def test_a_message_prepare_cannot_read_comes_with_nothing_prepared(mailbox):
	fill(mailbox, [1])
	mailbox.server.deliver(
		mailbox.user, b"Subject: caf\xe9\r\nMessage-ID: <2.test@usedesk.invalid>\r\n\r\nx\r\n"
	)
	got = {}
	drain(
		settings_for(mailbox),
		lambda m: got.setdefault(m.uid, m.prepared) is None or True,
		prepare=bytes.decode,  # UTF-8 only: the Latin-1 subject fails
	)
	assert got[1].startswith("From: Client 1") and got[2] is None
	assert seen_uids(mailbox) == {1, 2}, "a failed prepare is the handler's business, not a lost message"


def test_a_prepared_value_that_cannot_be_pickled_is_left_out_not_the_message(mailbox):
	fill(mailbox, [1, 2])
	got = []
	drain(
		settings_for(mailbox),
		lambda m: got.append((m.uid, m.prepared, m.raw[:12])) or True,
		prepare=memoryview,
	)
	assert got == [(1, None, b"From: Client"), (2, None, b"From: Client")]
	assert seen_uids(mailbox) == {1, 2}


def test_a_worker_killed_mid_drain_is_a_connection_error_and_marks_nothing_of_that_batch(mailbox):
	fill(mailbox, range(1, 8))
	handled = []

	def handle(message: FetchedMessage) -> bool:
		if message.uid == 4:
			for pid in worker_pids():
				os.kill(pid, signal.SIGKILL)
		handled.append(message.uid)
		return True

	with pytest.raises(MailConnectionError, match="fetching process stopped"):
		drain(settings_for(mailbox), handle, batch_size=3, commit=lambda: None, prepare=parse_message)

	assert handled == [1, 2, 3, 4, 5, 6], "the batch in hand is still handed over"
	assert seen_uids(mailbox) == {1, 2, 3}
	assert drain(settings_for(mailbox), acknowledge_all, prepare=parse_message).unseen == 4


def test_a_killed_caller_leaves_the_rest_unread_and_its_worker_exits(mailbox):
	settings = drain_killed_at_message_3_of_4(mailbox, worker=True)

	assert wait_for(lambda: not worker_pids()), "the worker outlived its caller"
	assert seen_uids(mailbox) == {1, 2}
	assert drain(settings, acknowledge_all, prepare=parse_message).unseen == 2


def test_time_budget_with_a_worker_leaves_the_rest_for_the_next_drain(mailbox):
	fill(mailbox, range(1, 61))
	now = [0.0]

	def slow_handle(message: FetchedMessage) -> bool:
		now[0] += 1.0
		return True

	first = drain(
		settings_for(mailbox),
		slow_handle,
		time_budget=25,
		batch_size=10,
		clock=lambda: now[0],
		prepare=parse_message,
	)

	assert (first.out_of_time, first.fetched, first.marked_seen, first.remaining) == (True, 25, 25, 35)
	second = drain(settings_for(mailbox), lambda m: number_of(m) > 25, prepare=parse_message)
	assert (second.unseen, second.fetched, second.acknowledged) == (35, 35, 35)
	assert seen_uids(mailbox) == set(range(1, 61))


def test_a_refused_login_in_the_worker_is_an_authentication_error_without_the_password(mailbox):
	wrong = "Wr0ng-Pa55word-for-test"

	with pytest.raises(AuthenticationError) as caught:
		drain(settings_for(mailbox, password=wrong), acknowledge_all, prepare=parse_message)

	assert wrong not in str(caught.value) and mailbox.user in str(caught.value)
	assert wait_for(lambda: not worker_pids())


def test_a_worker_that_cannot_start_is_a_connection_error(mailbox, monkeypatch, tmp_path):
	fill(mailbox, [1])
	monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))

	with pytest.raises(MailConnectionError, match="fetching process could not start"):
		drain(settings_for(mailbox), acknowledge_all, prepare=parse_message)

	assert seen_uids(mailbox) == set()


@pytest.mark.parametrize("unread", [3, 4])
def test_below_worker_from_messages_are_prepared_here_and_from_it_by_the_worker(mailbox, unread):
	"""A poll that finds one new message (the real-time listener's) should not pay for a process."""
	fill(mailbox, range(1, unread + 1))
	fill(mailbox, [9], seen=True)
	handled = []

	def handle(message: FetchedMessage) -> bool:
		handled.append((message.uid, message.prepared.message_id, bool(worker_pids())))
		return True

	result = drain(settings_for(mailbox), handle, prepare=parse_message, worker_from=4, commit=lambda: None)
	in_worker = unread >= 4
	assert handled == [(n, f"{n}.test@usedesk.invalid", in_worker) for n in range(1, unread + 1)]
	assert (result.unseen, result.marked_seen) == (unread, unread)
	assert seen_uids(mailbox) == {*range(1, unread + 1), unread + 1}
