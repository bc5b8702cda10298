"""Store incoming mail in tickets: every message in exactly one ticket, exactly once.

The ledger (Email Channel Message) has a unique index on (channel, dedupe key); its row is
inserted first in the transaction, so a retry or a concurrent worker holding the same
message waits on that index and then fails as a duplicate instead of storing it twice.
"""

import hashlib
import html
import re
from dataclasses import dataclass

import frappe
from frappe.utils import convert_utc_to_system_timezone, now_datetime

from usedesk_email.channel_config import own_addresses
from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.thread_keys import find_token

LEDGER = "Email Channel Message"
AUTOMATIC = (Kind.AUTO_REPLY, Kind.BOUNCE)
SUBJECT_LENGTH = 998  # RFC 5322's line limit; longer subjects are cut, the raw mail is kept


@dataclass
class IngestResult:
	ticket: str | None = None
	communication: str | None = None
	duplicate: bool = False
	outcome: str = "stored"  # stored | duplicate | ignored:<why> | failed
	failure: str | None = None


def dedupe_key(message_id: str) -> str:
	return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def ingest_raw(
	channel, raw: bytes, source: str, failure: str | None = None, parsed: ParsedMessage | None = None
) -> IngestResult:
	"""Parse and store one message and commit; what cannot be stored is logged raw and committed.

	An exception escapes only when even the failure log cannot be written (database down):
	then nothing was committed and the caller must leave the message where it was.
	"""
	try:
		parsed = parsed or parse_message(raw)
		result = store(channel, parsed, source)
		frappe.db.commit()
		return result
	except frappe.UniqueValidationError:
		frappe.db.rollback()
		frappe.clear_messages()
		return duplicate_of(channel, parsed.message_id)
	except Exception:
		frappe.db.rollback()
		frappe.clear_messages()
		name = log_failure(channel.name, raw, source, frappe.get_traceback(), failure)
		frappe.db.commit()
		return IngestResult(outcome="failed", failure=name)


def duplicate_of(channel, message_id: str) -> IngestResult:
	"""Point a repeated delivery at where the first one went."""
	row = (
		frappe.db.get_value(
			LEDGER,
			{"channel": channel.name, "dedupe_key": dedupe_key(message_id)},
			["ticket", "communication"],
			as_dict=True,
		)
		or frappe._dict()
	)
	return IngestResult(
		ticket=row.ticket, communication=row.communication, duplicate=True, outcome="duplicate"
	)


def store(channel, msg: ParsedMessage, source: str) -> IngestResult:
	key = dedupe_key(msg.message_id)
	if frappe.db.exists(LEDGER, {"channel": channel.name, "dedupe_key": key}):
		return duplicate_of(channel, msg.message_id)
	ledger = frappe.get_doc(
		{
			"doctype": LEDGER,
			"channel": channel.name,
			"dedupe_key": key,
			"message_id": msg.message_id,
			"direction": "Incoming",
			"kind": msg.kind.value,
			"imap_uid": source,
		}
	).insert(ignore_permissions=True)

	own = own_addresses(channel)
	sender = msg.sender.email.lower() if msg.sender else ""
	ticket = find_ticket(channel, msg, sender)
	if sender in own:
		return ignore(ledger, ticket, "ignored:own-address")
	if msg.kind in AUTOMATIC and not ticket:
		return ignore(ledger, None, f"ignored:{msg.kind.value}")
	if not sender:
		raise ValueError("The message has no sender address (From); it cannot open or join a ticket.")

	participants = cc_participants(msg, own, sender)
	if ticket and frappe.db.get_value("Ticket", ticket, "status") == "Closed" and msg.kind not in AUTOMATIC:
		ticket = open_ticket(channel, msg, participants, previous=ticket)
	elif ticket:
		add_participants(ticket, participants)
	else:
		ticket = open_ticket(channel, msg, participants)

	communication = add_communication(ticket, msg)
	ledger.db_set({"ticket": ticket, "communication": communication, "outcome": "stored"})
	return IngestResult(ticket=ticket, communication=communication)


def ignore(ledger, ticket: str | None, outcome: str) -> IngestResult:
	ledger.db_set({"ticket": ticket, "outcome": outcome})
	return IngestResult(ticket=ticket, outcome=outcome)


def find_ticket(channel, msg: ParsedMessage, sender: str) -> str | None:
	"""By stored Message-IDs first (ours and the clients'), then by the ticket token."""
	ids = msg.thread_ids
	if msg.kind == Kind.BOUNCE and msg.bounced_message_id:
		ids = [msg.bounced_message_id, *ids]
	if ids:
		keys = [dedupe_key(i) for i in ids]
		rows = frappe.get_all(
			LEDGER,
			filters={"channel": channel.name, "dedupe_key": ("in", keys), "ticket": ("is", "set")},
			fields=["dedupe_key", "ticket"],
		)
		by_key = {r.dedupe_key: r.ticket for r in rows}
		for k in keys:
			if k in by_key:
				return by_key[k]
	return ticket_by_token(channel, msg.subject, sender)


def ticket_by_token(channel, subject: str, sender: str) -> str | None:
	"""A token alone is not proof: only the ticket's own client or CC may thread by it."""
	name = find_token(subject)
	if not name:
		return None
	row = frappe.db.get_value("Ticket", name, ["channel", "client_email", "cc_addresses"], as_dict=True)
	if not row or row.channel != channel.name:
		return None
	if sender == (row.client_email or "").lower() or sender in split_lines(row.cc_addresses):
		return name
	return None


def split_lines(value: str | None) -> list[str]:
	return [line.strip().lower() for line in (value or "").splitlines() if line.strip()]


def cc_participants(msg: ParsedMessage, own: set[str], sender: str) -> list[str]:
	seen: dict[str, None] = {}
	for address in [*msg.to, *msg.cc]:
		email = address.email.lower()
		if email and email not in own and email != sender:
			seen.setdefault(email, None)
	return list(seen)


def add_participants(ticket: str, participants: list[str]) -> None:
	current = split_lines(frappe.db.get_value("Ticket", ticket, "cc_addresses"))
	new = [p for p in participants if p not in current]
	if new:
		frappe.db.set_value("Ticket", ticket, "cc_addresses", "\n".join(current + new), update_modified=False)


def local_time(msg: ParsedMessage):
	if msg.date and msg.date_trusted:
		return convert_utc_to_system_timezone(msg.date).replace(tzinfo=None)
	return now_datetime()


def open_ticket(channel, msg: ParsedMessage, participants: list[str], previous: str | None = None) -> str:
	sender: Address = msg.sender
	ticket = frappe.get_doc(
		{
			"doctype": "Ticket",
			"subject": (msg.subject or "").strip()[:SUBJECT_LENGTH] or frappe._("(no subject)"),
			"status": "Open",
			"channel": channel.name,
			"client_email": sender.email.lower(),
			"client_name": sender.name,
			"contact": frappe.db.get_value("Contact Email", {"email_id": sender.email}, "parent"),
			"cc_addresses": "\n".join(participants),
			"opened_at": local_time(msg),
			"previous_ticket": previous,
		}
	)
	ticket.flags.ignore_links = True
	ticket.insert(ignore_permissions=True)
	return ticket.name


def add_communication(ticket: str, msg: ParsedMessage) -> str:
	comm = frappe.get_doc(
		{
			"doctype": "Communication",
			"communication_type": "Communication",
			"communication_medium": "Email",
			"sent_or_received": "Received",
			"subject": (msg.subject or "")[:SUBJECT_LENGTH] or frappe._("(no subject)"),
			"content": msg.html or text_as_html(msg.text),
			"text_content": msg.text,
			"sender": msg.sender.email,
			"sender_full_name": msg.sender.name or msg.sender.email,
			"recipients": ", ".join(a.email for a in msg.to),
			"cc": ", ".join(a.email for a in msg.cc),
			"message_id": msg.message_id,
			"communication_date": local_time(msg),
			"reference_doctype": "Ticket",
			"reference_name": ticket,
			"has_attachment": 1 if msg.attachments else 0,
		}
	)
	comm.flags.in_receive = True
	comm.flags.usedesk_kind = msg.kind
	comm.insert(ignore_permissions=True)
	if msg.attachments:
		attach_files(comm, msg)
	return comm.name


def text_as_html(text: str) -> str:
	return "<p>" + html.escape(text or "").replace("\n", "<br>") + "</p>"


def attach_files(comm, msg: ParsedMessage) -> None:
	"""Private Files on the Communication; inline `cid:` references point at them."""
	content = comm.content
	for attachment in msg.attachments:
		file = frappe.get_doc(
			{
				"doctype": "File",
				"file_name": attachment.safe_name,
				"attached_to_doctype": "Communication",
				"attached_to_name": comm.name,
				"content": attachment.payload,
				"is_private": 1,
			}
		).insert(ignore_permissions=True)
		if attachment.content_id:
			cid = re.compile(r"cid:\s*" + re.escape(attachment.content_id), re.IGNORECASE)
			content = cid.sub(file.file_url, content)
	if content != comm.content:
		comm.db_set("content", content, update_modified=False)


def log_failure(channel: str, raw: bytes, source: str, error: str, existing: str | None = None) -> str:
	"""Keep the whole raw message with the reason, so an admin can retry it from the desk.

	The same bytes failing again (a sender retrying, the next poll) count as another attempt
	on the same entry rather than a new one.
	"""
	raw_sha256 = hashlib.sha256(raw).hexdigest()
	existing = existing or frappe.db.get_value(
		"Email Channel Failure", {"channel": channel, "raw_sha256": raw_sha256, "status": "Failed"}
	)
	if existing:
		doc = frappe.get_doc("Email Channel Failure", existing)
		doc.attempts = (doc.attempts or 0) + 1
		doc.error = error
		doc.status = "Failed"
		doc.save(ignore_permissions=True)
		return doc.name
	head = header_summary(raw)
	doc = frappe.get_doc(
		{
			"doctype": "Email Channel Failure",
			"channel": channel,
			"status": "Failed",
			"attempts": 1,
			"source": source,
			"error": error,
			"raw_sha256": raw_sha256,
			**head,
		}
	).insert(ignore_permissions=True)
	file = frappe.get_doc(
		{
			"doctype": "File",
			"file_name": f"message-{doc.name}.eml",
			"attached_to_doctype": "Email Channel Failure",
			"attached_to_name": doc.name,
			"attached_to_field": "raw_file",
			"content": raw,
			"is_private": 1,
		}
	).insert(ignore_permissions=True)
	doc.db_set("raw_file", file.file_url)
	return doc.name


def header_summary(raw: bytes) -> dict:
	"""Best-effort subject and sender for the failure list; the parser may be what failed."""
	try:
		msg = parse_message(raw)
		return {
			"subject": (msg.subject or "")[:990],
			"sender": msg.sender.email if msg.sender else "",
			"message_id": msg.message_id,
		}
	except Exception:
		return {"subject": "", "sender": "", "message_id": ""}


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
