"""Messages stored many to a transaction: nothing lost, nothing stored twice, no savepoints.

A savepoint per message would cost a database round trip per message, and rolling back to
one does not delete the files the message wrote (Frappe deletes a new file only on a full
rollback). So messages are written straight into the open transaction. When one fails,
the whole transaction is rolled back (its files with it) and written again: the messages
before it stored as before, the failed one counted as a duplicate or logged raw as a
failure. The caller commits once for the batch (the poll: before marking it read); what
the caller's transaction held before the batch began is committed first.
"""

from dataclasses import dataclass, field

import frappe

from usedesk_email.contacts import forget_timeline_links, load_timeline_links, remember_timeline_links
from usedesk_email.inbound.failures import log_failure
from usedesk_email.inbound.store import IngestResult, keep_differing_copy, store
from usedesk_email.mail.message import ParsedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE


@dataclass
class PendingMessage:
	raw: bytes
	source: str
	parsed: ParsedMessage | None
	failure: str | None = None  # the failure entry this message is retried from
	result: IngestResult | None = None
	duplicate: bool = False
	error: str | None = None  # a traceback: the message is logged as a failure, not stored


@dataclass
class IngestBatch:
	channel: object
	pending: list[PendingMessage] = field(default_factory=list)

	def __enter__(self) -> "IngestBatch":
		return self

	def __exit__(self, *exc_info: object) -> None:
		forget_timeline_links()

	def expect(self, messages: list[ParsedMessage]) -> None:
		"""The messages about to be added: their people's Contacts are looked up in one query."""
		remember_timeline_links()
		load_timeline_links(
			address.email for msg in messages for address in (msg.sender, *msg.to, *msg.cc) if address
		)

	def add(
		self, raw: bytes, source: str, parsed: ParsedMessage | None = None, failure: str | None = None
	) -> None:
		"""Store one message in the open transaction; `commit` makes the batch durable.

		An exception escapes only when even the failure log cannot be written (database down)
		or the database undid the transaction (deadlock): then the caller must not commit.
		"""
		if not self.pending:
			frappe.db.commit()  # what the caller wrote before is not the batch's to roll back
		message = PendingMessage(raw, source, parsed, failure)
		self.pending.append(message)
		if not self.write(message):
			self.rewrite()

	def write(self, message: PendingMessage) -> bool:
		"""Write one message; False when it failed and the transaction must be rolled back."""
		if message.duplicate:
			key = keep_differing_copy(self.channel, message.parsed)
			message.result = IngestResult(
				duplicate=True, outcome="duplicate", message_id=message.parsed.message_id, key=key
			)
			return True
		if message.error:
			entry = log_failure(
				self.channel.name, message.raw, message.source, message.error, message.failure
			)
			message.result = IngestResult(outcome="failed", failure=entry)
			return True
		try:
			message.parsed = message.parsed or parse_message(message.raw)
			message.result = store(self.channel, message.parsed, message.source)
			return True
		except (frappe.QueryDeadlockError, frappe.QueryTimeoutError):
			raise  # the database undid (or must undo) the whole transaction: retry it all later
		except frappe.UniqueValidationError:
			message.duplicate = True
		except Exception:
			message.error = frappe.get_traceback()
		return False

	def rewrite(self) -> None:
		"""Roll back and write the batch again; every pass settles at least one more failure.

		A message stored before can fail on the next pass too (a concurrent delivery stored it
		meanwhile), so this goes on until a pass writes the whole batch.
		"""
		while True:
			frappe.db.rollback()
			frappe.clear_messages()
			if all(self.write(message) for message in self.pending):
				return

	def commit(self) -> list[IngestResult]:
		"""Commit the batch; returns what became of each of its messages, in order."""
		frappe.db.commit()
		forget_timeline_links()  # the next batch sees Contacts made meanwhile
		results = [message.result for message in self.pending]
		self.pending = []
		return results


def ingest_raw(
	channel, raw: bytes, source: str, failure: str | None = None, parsed: ParsedMessage | None = None
) -> IngestResult:
	"""Parse and store one message and commit; what cannot be stored is logged raw and committed."""
	batch = IngestBatch(channel)
	batch.add(raw, source, parsed, failure)
	(result,) = batch.commit()  # a fresh snapshot: a duplicate's first copy is visible now
	return duplicate_of(channel, result.key) if result.duplicate else result


def duplicate_of(channel, key: str) -> IngestResult:
	"""Point a repeated delivery at where the first one went."""
	row = (
		frappe.db.get_value(
			CHANNEL_MESSAGE,
			{"channel": channel.name, "dedupe_key": key},
			["ticket", "communication"],
			as_dict=True,
		)
		or frappe._dict()
	)
	return IngestResult(
		ticket=row.ticket, communication=row.communication, duplicate=True, outcome="duplicate"
	)


def retry_failure(name: str) -> IngestResult:
	doc = frappe.get_doc("Email Channel Failure", name)
	raw = frappe.get_doc("File", {"file_url": doc.raw_file}).get_content()
	if isinstance(raw, str):
		raw = raw.encode("utf-8", "surrogateescape")
	channel = frappe.get_doc("Email Channel", doc.channel)
	result = ingest_raw(channel, raw, doc.source, failure=doc.name)
	if result.outcome != "failed":
		frappe.db.set_value("Email Channel Failure", name, {"status": "Retried", "ticket": result.ticket})
		frappe.db.commit()
	return result
