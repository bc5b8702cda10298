"""Draining a mailbox's unread mail into a caller's handler: nothing marked read before it is stored.

Its own module because it picks the session: an `ImapSession` in this process, or a
`FetchWorker` (which wraps one in a worker process) when the caller prepares messages there
and there are enough of them for the worker to pay for its start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from usedesk_email.mail.errors import ConfigError, MailError
from usedesk_email.mail.fetch_worker import FetchWorker
from usedesk_email.mail.imap_session import (
	DEFAULT_BATCH_BYTES,
	DEFAULT_BATCH_SIZE,
	DEFAULT_TIME_BUDGET,
	DrainResult,
	FetchedMessage,
	ImapSession,
	ImapSettings,
	check_batch_limits,
)


class DrainSession(Protocol):
	"""What `drain` needs of a mailbox, as `ImapSession` and `FetchWorker` both give it: a new
	session kind (another process model, another protocol) implements these."""

	def __enter__(self) -> DrainSession: ...
	def __exit__(self, *exc_info: object) -> None: ...
	def select(self) -> int: ...
	def unseen_uids(self) -> list[int]: ...
	def fetch_batches(
		self, uids: list[int], batch_size: int, batch_bytes: int
	) -> Iterator[list[FetchedMessage]]: ...
	def mark_seen(self, uids: Iterable[int]) -> None: ...


def drain(
	settings: ImapSettings,
	handle: Callable[[FetchedMessage], bool],
	*,
	known_uidvalidity: int | None = None,
	time_budget: float = DEFAULT_TIME_BUDGET,
	batch_size: int = DEFAULT_BATCH_SIZE,
	batch_bytes: int = DEFAULT_BATCH_BYTES,
	clock: Callable[[], float] = time.monotonic,
	commit: Callable[[], None] | None = None,
	prepare: Callable[[bytes], object] | None = None,
	worker_from: int = 0,
	begin_batch: Callable[[list[FetchedMessage]], None] | None = None,
) -> DrainResult:
	"""Hand every unread message of the folder to ``handle`` and mark read what it acknowledged.

	``handle`` stores a message and returns True only once that is committed; False leaves
	the message unread. Acknowledged messages are marked read after each batch, and also
	before an exception from ``handle`` propagates; the failing message and the rest stay
	unread. With ``commit``, True means "stored in the caller's open transaction": ``commit``
	runs once per batch before anything is marked read, and an exception marks nothing of
	the batch (one commit per batch instead of one per message). A dropped connection raises
	MailConnectionError and marks nothing of the batch in flight. The time budget is checked between messages; what was not handed over is
	reported as ``remaining``. A UIDVALIDITY other than ``known_uidvalidity`` is reported,
	and unread mail is still handed over (the caller dedupes by Message-ID).

	With ``prepare`` (a module-level function: it is pickled by name), the IMAP session runs
	in a worker process (``fetch_worker``) that fetches the next batch and applies
	``prepare`` to each of its messages while ``handle`` works on this one; the result is the
	message's ``prepared`` (None where ``prepare`` failed). With ``worker_from`` > 0, fewer
	unread messages than that are fetched and prepared in this process (a poll that finds one
	new message would spend most of its time starting the worker); for more, the worker
	opens a connection of its own.

	``begin_batch`` sees each batch before its messages are handed over one by one (to look
	up what they need in one go); an exception from it counts as one from ``handle``.
	"""
	check_batch_limits(batch_size, batch_bytes)
	if isinstance(time_budget, bool) or not isinstance(time_budget, int | float) or time_budget <= 0:
		raise ConfigError("the time budget of a mail session must be a positive number of seconds")
	deadline = clock() + time_budget

	def run(
		session: DrainSession, uidvalidity: int, unseen: list[int], batches: Iterator[list[FetchedMessage]]
	) -> DrainResult:
		result = DrainResult(
			uidvalidity=uidvalidity,
			uidvalidity_changed=known_uidvalidity is not None and known_uidvalidity != uidvalidity,
			unseen=len(unseen),
		)
		_drain_batches(session, batches, handle, result, clock, deadline, commit, begin_batch)
		if result.out_of_time:
			result.remaining = len(unseen) - result.fetched
		return result

	if prepare is None or worker_from > 0:
		with ImapSession(settings) as session:
			uidvalidity = session.select()
			unseen = session.unseen_uids()
			if prepare is None or len(unseen) < worker_from:
				return run(
					session,
					uidvalidity,
					unseen,
					session.fetch_batches(unseen, batch_size, batch_bytes, prepare),
				)
	with FetchWorker(settings, prepare) as worker:
		uidvalidity = worker.select()
		unseen = worker.unseen_uids()
		return run(worker, uidvalidity, unseen, worker.fetch_batches(unseen, batch_size, batch_bytes))


def _drain_batches(
	session: DrainSession,
	batches: Iterator[list[FetchedMessage]],
	handle: Callable[[FetchedMessage], bool],
	result: DrainResult,
	clock: Callable[[], float],
	deadline: float,
	commit: Callable[[], None] | None,
	begin_batch: Callable[[list[FetchedMessage]], None] | None,
) -> None:
	while not result.out_of_time:
		if clock() >= deadline:
			result.out_of_time = True
			break
		batch = next(batches, None)
		if batch is None:
			break
		result.batches += 1
		result.largest_batch_bytes = max(result.largest_batch_bytes, sum(m.size for m in batch))
		_handle_batch(session, batch, handle, result, clock, deadline, commit, begin_batch)


def _handle_batch(
	session: DrainSession,
	batch: list[FetchedMessage],
	handle: Callable[[FetchedMessage], bool],
	result: DrainResult,
	clock: Callable[[], float],
	deadline: float,
	commit: Callable[[], None] | None,
	begin_batch: Callable[[list[FetchedMessage]], None] | None,
) -> None:
	acknowledged: list[int] = []
	try:
		if begin_batch is not None:
			begin_batch(batch)
		for message in batch:
			if clock() >= deadline:
				result.out_of_time = True
				break
			result.fetched += 1
			if handle(message):
				acknowledged.append(message.uid)
				result.acknowledged += 1
		if commit is not None:
			commit()
	except BaseException:
		# The caller's error wins; what it committed before still gets marked if possible.
		if commit is None:
			try:
				session.mark_seen(acknowledged)
			except MailError:
				pass
		else:
			result.acknowledged -= len(acknowledged)
		raise
	session.mark_seen(acknowledged)
	result.marked_seen += len(acknowledged)
