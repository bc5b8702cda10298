"""The IMAP side of ``drain`` in a second process, one batch ahead of the caller.

Storing a message (the caller's database work) and fetching and parsing the next one are
both CPU-bound Python: in one process they take turns, and a thread only adds contention
for the GIL. The worker holds the IMAP session and parses; the caller asks it for batch
n+1 before handing batch n to its handler, and for marking read only after its commit.
The rules of ``drain.drain`` hold unchanged: nothing is marked read before the
caller acknowledged it, and a worker or caller that dies leaves the rest unread.

Requests and answers are pickled frames on the worker's stdin and stdout, between two
processes of this code; the settings (with their secrets) never appear on a command line.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from usedesk_email.mail.errors import MailConnectionError, MailError
from usedesk_email.mail.imap_session import FetchedMessage, ImapSession, ImapSettings

_LENGTH = struct.Struct("!Q")
STOP_TIMEOUT = 30.0  # seconds a stopping worker gets to log out before it is killed
FIRST_BATCH_SIZE = 5  # messages; the first batch is waited for, so it is kept short


def write_frame(out: BinaryIO, value: object) -> None:
	data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
	out.write(_LENGTH.pack(len(data)) + data)
	out.flush()


def read_frame(inp: BinaryIO) -> object:
	"""The next frame; EOFError when the other side is gone."""
	head = inp.read(_LENGTH.size)
	if len(head) < _LENGTH.size:
		raise EOFError
	(length,) = _LENGTH.unpack(head)
	data = inp.read(length)
	if len(data) < length:
		raise EOFError
	return pickle.loads(data)


class FetchWorker:
	"""What ``drain`` uses of an ImapSession (select, unseen_uids, fetch_batches, mark_seen),
	served by a worker process that also applies ``prepare`` to every fetched message."""

	def __init__(self, settings: ImapSettings, prepare: Callable[[bytes], object]) -> None:
		settings.validate()
		self.settings = settings
		self._prepare = prepare
		self._process: subprocess.Popen | None = None
		self._next_id = 0
		self._answers: dict[int, tuple[str, object]] = {}

	def __enter__(self) -> FetchWorker:
		try:
			self._process = subprocess.Popen(
				[sys.executable, "-m", "usedesk_email.mail.fetch_worker"],
				stdin=subprocess.PIPE,
				stdout=subprocess.PIPE,
			)
		except OSError as e:
			raise MailConnectionError(
				f"IMAP {self.settings.address}: the fetching process could not start ({e})"
			) from None
		try:
			self._call("open", self.settings)
		except BaseException:
			self.__exit__()
			raise
		return self

	def __exit__(self, *exc_info: object) -> None:
		"""Let the worker log out; a fetch still in flight is read and dropped, not marked."""
		process, self._process = self._process, None
		if process is None:
			return
		try:
			write_frame(process.stdin, (self._new_id(), "close", ()))
			process.stdin.close()
			while True:
				read_frame(process.stdout)
		except (EOFError, OSError):
			pass
		try:
			process.wait(timeout=STOP_TIMEOUT)
		except subprocess.TimeoutExpired:
			process.kill()
			process.wait()
		process.stdout.close()

	def select(self) -> int:
		return self._call("select")

	def unseen_uids(self) -> list[int]:
		return self._call("unseen_uids")

	def fetch_batches(
		self, uids: Iterable[int], batch_size: int, batch_bytes: int
	) -> Iterator[list[FetchedMessage]]:
		"""As ImapSession.fetch_batches; the next batch is asked for before this one is handed out."""
		plan = self._call("plan", sorted(uids), batch_size, batch_bytes)
		if plan and len(plan[0]) > FIRST_BATCH_SIZE:  # the caller starts while the rest is parsed
			plan[:1] = [plan[0][:FIRST_BATCH_SIZE], plan[0][FIRST_BATCH_SIZE:]]
		pending = self._send("fetch_batch", plan[0], self._prepare) if plan else None
		for index in range(len(plan)):
			batch = self._answer(pending)
			if index + 1 < len(plan):
				pending = self._send("fetch_batch", plan[index + 1], self._prepare)
			if batch:
				yield batch

	def mark_seen(self, uids: Iterable[int]) -> None:
		self._call("mark_seen", sorted(uids))

	def _call(self, method: str, *args: object) -> object:
		return self._answer(self._send(method, *args))

	def _new_id(self) -> int:
		self._next_id += 1
		return self._next_id

	def _send(self, method: str, *args: object) -> int:
		request = self._new_id()
		try:
			write_frame(self._require_process().stdin, (request, method, args))
		except OSError:
			raise self._gone() from None
		return request

	def _answer(self, request: int) -> object:
		"""The answer to ``request``; answers to later requests that come first are kept."""
		while request not in self._answers:
			try:
				number, outcome, value = read_frame(self._require_process().stdout)
			except (EOFError, OSError):
				raise self._gone() from None
			self._answers[number] = (outcome, value)
		outcome, value = self._answers.pop(request)
		if outcome == "error":
			raise value
		return value

	def _require_process(self) -> subprocess.Popen:
		if self._process is None:
			raise self._gone()
		return self._process

	def _gone(self) -> MailConnectionError:
		return MailConnectionError(
			f"IMAP {self.settings.address}: the fetching process stopped before answering"
		)


def serve(inp: BinaryIO, out: BinaryIO) -> None:
	"""The worker: one ImapSession, requests answered in order until "close" or EOF."""
	try:
		request, _method, (settings,) = read_frame(inp)
	except EOFError:
		return
	try:
		session = ImapSession(settings)
		session.open()
	except MailError as e:
		write_frame(out, (request, "error", e))
		return
	methods = {
		"select": session.select,
		"unseen_uids": session.unseen_uids,
		"plan": session.plan,
		"fetch_batch": session.fetch_batch,
		"mark_seen": session.mark_seen,
	}
	write_frame(out, (request, "ok", None))
	try:
		while True:
			try:
				request, method, args = read_frame(inp)
			except EOFError:
				return  # the caller is gone: what it did not acknowledge stays unread
			if method == "close":
				return
			try:
				answer(out, request, methods[method](*args))
			except Exception as e:  # the caller raises it, as it would raise it in-process
				write_frame(out, (request, "error", e))
	finally:
		session.close()


def answer(out: BinaryIO, request: int, value: object) -> None:
	"""Send a result; messages whose prepared value cannot be pickled go without it (the
	caller then parses them itself) rather than stopping the worker at every poll."""
	try:
		write_frame(out, (request, "ok", value))
	except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
		if not isinstance(value, list):
			raise
		write_frame(out, (request, "ok", [without_prepared(message) for message in value]))


def without_prepared(message: FetchedMessage) -> FetchedMessage:
	try:
		pickle.dumps(message.prepared)
		return message
	except Exception:
		return dataclasses.replace(message, prepared=None)


if __name__ == "__main__":
	frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
	os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt a frame
	serve(sys.stdin.buffer, frames)
