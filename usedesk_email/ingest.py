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
from frappe.utils.caching import request_cache

from usedesk_email.channel_config import own_addresses
from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.quote_split import collapsed
from usedesk_email.mail.thread_keys import find_token
from usedesk_email.usedesk_email.doctype.ticket.ticket import communication_update

LEDGER = "Email Channel Message"
AUTOMATIC = (Kind.AUTO_REPLY, Kind.BOUNCE)
SAVEPOINT = "usedesk_email_message"
ATTACHMENTS_FOLDER = "Home/Attachments"  # made by Frappe's install, like its own attachments
SUBJECT_LENGTH = 998  # RFC 5322's line limit; longer subjects are cut, the raw mail is kept
TICKET_COLUMNS = ", ".join(
	f"ticket.{column}"
	for column in ("name", "channel", "status", "first_response_at", "client_email", "cc_addresses")
)


@dataclass
class IngestResult:
	ticket: str | None = None
	communication: str | None = None
	duplicate: bool = False
	outcome: str = "stored"  # stored | duplicate | ignored:<why> | failed
	failure: str | None = None
	message_id: str = ""


def dedupe_key(message_id: str) -> str:
	return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def ingest_raw(
	channel, raw: bytes, source: str, failure: str | None = None, parsed: ParsedMessage | None = None
) -> IngestResult:
	"""Parse and store one message and commit; what cannot be stored is logged raw and committed.

	An exception escapes only when even the failure log cannot be written (database down):
	then nothing was committed and the caller must leave the message where it was.
	"""
	result = ingest_pending(channel, raw, source, failure, parsed)
	if result.duplicate:
		frappe.db.rollback()  # a fresh snapshot sees where a concurrent delivery put it
		return duplicate_of(channel, result.message_id)
	frappe.db.commit()
	return result


def ingest_pending(
	channel, raw: bytes, source: str, failure: str | None = None, parsed: ParsedMessage | None = None
) -> IngestResult:
	"""Store one message in the caller's open transaction, behind a savepoint; the caller commits.

	A duplicate or a failure rolls back this message only; a failure is logged raw in the
	same transaction. The poll commits once per IMAP batch, before marking it read.
	"""
	frappe.db.savepoint(SAVEPOINT)
	links = len(pending_links())
	try:
		parsed = parsed or parse_message(raw)
		return store(channel, parsed, source)
	except frappe.UniqueValidationError:
		undo_message(links)
		return IngestResult(duplicate=True, outcome="duplicate", message_id=parsed.message_id)
	except (frappe.QueryDeadlockError, frappe.QueryTimeoutError):
		raise  # the database undid (or must undo) the whole transaction: retry it all later
	except Exception:
		error = frappe.get_traceback()
		undo_message(links)
		return IngestResult(outcome="failed", failure=log_failure(channel.name, raw, source, error, failure))


def undo_message(links: int) -> None:
	"""Roll back what this message wrote, and the timeline links it left for the commit."""
	frappe.db.rollback(save_point=SAVEPOINT)
	del pending_links()[links:]
	frappe.clear_messages()


def duplicate_of(channel, message_id: str) -> IngestResult:
	"""Point a repeated delivery at where the first one went."""
	rows = frappe.db.sql(
		f"SELECT ticket, communication FROM `tab{LEDGER}` WHERE channel=%s AND dedupe_key=%s",
		(channel.name, dedupe_key(message_id)),
		as_dict=True,
	)
	row = rows[0] if rows else frappe._dict()
	return IngestResult(
		ticket=row.ticket, communication=row.communication, duplicate=True, outcome="duplicate"
	)


def insert_row(
	doctype: str,
	values: dict,
	before: tuple[str, ...] = (),
	after: tuple[str, ...] = (),
	flags: dict | None = None,
):
	"""Insert a row of this app's own making without Frappe's document round trip.

	The ingestion hot path: the values are built and sanitised here, and Frappe's field
	validation, link checks and naming rules cost more than the rest of storing a message.
	The document events named in `before` and `after` still run, with other apps' hooks,
	notifications and server scripts. A unique-index clash raises `frappe.UniqueValidationError`.
	"""
	doc = frappe.get_doc({"doctype": doctype, **values})  # every field that matters is given
	doc.flags.update(flags or {})
	if not doc.name:
		doc.name = frappe.generate_hash(length=10)
	doc.set_user_and_timestamp()
	for event in before:
		doc.run_method(event)
	doc.db_insert()
	for event in after:
		doc.run_method(event)
	return doc


def insert_plain(doctype: str, *rows: dict) -> None:
	"""One INSERT of rows no document event watches (the ledger, timeline links); the rows
	give the same columns.

	Columns left out take their database defaults. A unique-index clash raises
	`frappe.UniqueValidationError`, as `insert_row` does.
	"""
	now, user = now_datetime(), frappe.session.user
	stamp = {"creation": now, "modified": now, "owner": user, "modified_by": user}
	rows = [{"name": frappe.generate_hash(length=10), **stamp, **row} for row in rows]
	columns = ", ".join(f"`{column}`" for column in rows[0])
	one_row = f"({', '.join(['%s'] * len(rows[0]))})"
	try:
		frappe.db.sql(
			f"INSERT INTO `tab{doctype}` ({columns}) VALUES {', '.join([one_row] * len(rows))}",
			tuple(value for row in rows for value in row.values()),
		)
	except Exception as e:
		if frappe.db.is_unique_key_violation(e):
			raise frappe.UniqueValidationError(doctype) from e
		raise


def store(channel, msg: ParsedMessage, source: str) -> IngestResult:
	"""Decide where the message goes, then write: ledger row first, ticket, Communication.

	The ticket and Communication names are chosen before the ledger row is written, so that
	row is complete at once; a duplicate fails on it before anything else is written.
	"""
	own = own_addresses(channel)
	sender = msg.sender.email.lower() if msg.sender else ""
	ticket = find_ticket(channel, msg, sender)
	ledger = {
		"channel": channel.name,
		"dedupe_key": dedupe_key(msg.message_id),
		"message_id": msg.message_id,
		"direction": "Incoming",
		"kind": msg.kind.value,
		"imap_uid": source,
	}
	if sender in own:
		return ignore(ledger, ticket and ticket.name, "ignored:own-address")
	if msg.kind in AUTOMATIC and not ticket:
		return ignore(ledger, None, f"ignored:{msg.kind.value}")
	if not sender:
		raise ValueError("The message has no sender address (From); it cannot open or join a ticket.")

	previous = ticket.name if ticket and ticket.status == "Closed" and msg.kind not in AUTOMATIC else None
	new_ticket = not ticket or previous
	name = str(frappe.db.get_next_sequence_val("Ticket")) if new_ticket else ticket.name
	communication = frappe.generate_hash(length=10)
	insert_plain(LEDGER, {**ledger, "ticket": name, "communication": communication, "outcome": "stored"})
	participants = cc_participants(msg, own, sender)
	if new_ticket:
		ticket = open_ticket(channel, msg, participants, name, previous)
	else:
		add_participants(ticket, participants)
	add_communication(ticket, msg, communication, [sender, *participants])
	return IngestResult(ticket=name, communication=communication)


def ignore(ledger: dict, ticket: str | None, outcome: str) -> IngestResult:
	insert_plain(LEDGER, {**ledger, "ticket": ticket, "outcome": outcome})
	return IngestResult(ticket=ticket, outcome=outcome)


def update_row(doctype: str, name: str, **values) -> None:
	"""One UPDATE, without the query builder's per-call parsing: the ingestion hot path."""
	columns = ", ".join(f"`{k}`=%s" for k in values)
	frappe.db.sql(f"UPDATE `tab{doctype}` SET {columns} WHERE name=%s", (*values.values(), name))


def find_ticket(channel, msg: ParsedMessage, sender: str):
	"""By stored Message-IDs first (ours and the clients'), then by the ticket token.

	Returns the ticket's name, channel, status, client and CC participants, or None.
	"""
	ids = msg.thread_ids
	if msg.kind == Kind.BOUNCE and msg.bounced_message_id:
		ids = [msg.bounced_message_id, *ids]
	if ids:
		keys = [dedupe_key(i) for i in ids]
		rows = frappe.db.sql(
			f"""SELECT ledger.dedupe_key, {TICKET_COLUMNS} FROM `tab{LEDGER}` ledger
			JOIN `tabTicket` ticket ON ticket.name = ledger.ticket
			WHERE ledger.channel=%s AND ledger.dedupe_key IN %s""",
			(channel.name, keys),
			as_dict=True,
		)
		by_key = {row.pop("dedupe_key"): row for row in rows}
		for k in keys:
			if k in by_key:
				return ticket_found(by_key[k])
	return ticket_by_token(channel, msg.subject, sender)


def ticket_row(name: str):
	rows = frappe.db.sql(
		f"SELECT {TICKET_COLUMNS} FROM `tabTicket` ticket WHERE ticket.name=%s", (name,), as_dict=True
	)
	return ticket_found(rows[0]) if rows else None


def ticket_found(row):
	row.name = str(row.name)  # autoincrement names are numbers; links hold text
	return row


def ticket_by_token(channel, subject: str, sender: str):
	"""A token alone is not proof: only the ticket's own client or CC may thread by it."""
	name = find_token(subject)
	row = ticket_row(name) if name else None
	if not row or row.channel != channel.name:
		return None
	if sender == (row.client_email or "").lower() or sender in split_lines(row.cc_addresses):
		return row
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


def add_participants(ticket, participants: list[str]) -> None:
	current = split_lines(ticket.cc_addresses)
	new = [p for p in participants if p not in current]
	if new:
		update_row("Ticket", ticket.name, cc_addresses="\n".join(current + new))


def local_time(msg: ParsedMessage):
	if msg.date and msg.date_trusted:
		return convert_utc_to_system_timezone(msg.date).replace(tzinfo=None)
	return now_datetime()


def open_ticket(channel, msg: ParsedMessage, participants: list[str], name: str, previous: str | None):
	sender: Address = msg.sender
	ticket = insert_row(
		"Ticket",
		{
			"name": int(name),
			"subject": (msg.subject or "").strip()[:SUBJECT_LENGTH] or frappe._("(no subject)"),
			"status": "Open",
			"channel": channel.name,
			"client_email": sender.email.lower(),
			"client_name": sender.name,
			"contact": contact_of(sender.email),
			"cc_addresses": "\n".join(participants),
			"opened_at": local_time(msg),
			"last_message_at": local_time(msg),
			"previous_ticket": previous,
		},
		before=("before_insert", "validate", "before_save"),
		after=("after_insert", "on_update"),  # assignment rules, notifications, other apps' hooks
	)
	return frappe._dict(name=name, status=ticket.status, first_response_at=None, is_new=True)


def contact_of(email: str) -> str | None:
	return next((name for doctype, name in timeline_links_of(email) if doctype == "Contact"), None)


def add_communication(ticket, msg: ParsedMessage, name: str, people: list[str]) -> None:
	content = attach_files(name, msg, collapsed(msg.new_html, msg.quoted_html, frappe._("Quoted text")))
	comm = insert_row(
		"Communication",
		{
			"name": name,
			"communication_type": "Communication",
			"communication_medium": "Email",
			"sent_or_received": "Received",
			"status": "Linked",  # what Frappe's own rules give a Communication with a reference
			"subject": (msg.subject or "")[:SUBJECT_LENGTH] or frappe._("(no subject)"),
			"content": content,
			"text_content": msg.text,
			"sender": msg.sender.email,
			"sender_full_name": msg.sender.name or msg.sender.email,
			"recipients": ", ".join(a.email for a in msg.to),
			"cc": ", ".join(a.email for a in msg.cc),
			"message_id": msg.message_id,
			"communication_date": local_time(msg),
			"reference_doctype": "Ticket",
			"reference_name": ticket.name,
			"has_attachment": 1 if msg.attachments else 0,
			"user": frappe.session.user,
		},
	)
	comm.flags.in_receive = True
	comm.flags.usedesk_kind = msg.kind
	links = timeline_links(people)
	for doctype, link_name in links:
		comm.add_link(doctype, link_name)  # seen by the after_insert hooks
	values = communication_update(ticket.status, ticket.first_response_at, comm)
	if ticket.get("is_new"):
		values.pop("last_message_at", None)  # written with the ticket
	if values:
		update_row("Ticket", ticket.name, **values)
	comm.run_method("after_insert")  # the desk's live timeline, and other apps' hooks
	pending_links().extend(
		{"parent": name, "parenttype": "Communication", "parentfield": "timeline_links"}
		| {"idx": idx, "link_doctype": doctype, "link_name": link_name}
		for idx, (doctype, link_name) in enumerate(links, 1)
	)


def timeline_links(people: list[str]) -> list[tuple[str, str]]:
	"""Timeline links as Frappe's own received mail gets them: the Contacts of the sender and
	of the people copied, and what those Contacts link to (a Customer, a Supplier), so the
	message shows on their timelines too."""
	return list(dict.fromkeys(link for email in people for link in timeline_links_of(email)))


def pending_links() -> list[dict]:
	"""Timeline link rows of the open transaction, written by one INSERT just before it
	commits (a batch of messages, one statement); a rollback drops them with the rest."""
	pending = getattr(frappe.local, "usedesk_pending_links", None)
	if pending is None:
		pending = frappe.local.usedesk_pending_links = []
		frappe.db.before_commit.add(write_pending_links)
		frappe.db.after_rollback.add(drop_pending_links)
	return pending


def write_pending_links() -> None:
	rows = frappe.local.usedesk_pending_links
	frappe.local.usedesk_pending_links = None
	if rows:
		insert_plain("Communication Link", *rows)


def drop_pending_links() -> None:
	frappe.local.usedesk_pending_links = None


@request_cache  # one lookup per sender in a poll of many messages
def timeline_links_of(email: str) -> tuple[tuple[str, str], ...]:
	"""The Contact of an address (the first, as Frappe takes it) and what it links to."""
	rows = frappe.db.sql(
		"""SELECT contact.parent, link.link_doctype, link.link_name FROM `tabContact Email` contact
		LEFT JOIN `tabDynamic Link` link ON link.parenttype='Contact' AND link.parent=contact.parent
		WHERE contact.email_id=%s""",
		(email,),
	)
	if not rows:
		return ()
	contact = rows[0][0]
	links = ((doctype, name) for parent, doctype, name in rows if parent == contact and doctype)
	return (("Contact", contact), *links)


def attach_files(communication: str, msg: ParsedMessage, content: str) -> str:
	"""Private Files for the Communication about to be inserted; returns the content with
	inline `cid:` references pointing at them.

	Written before the Communication itself, so its content is final when inserted. The
	File's own events run (before_insert writes the bytes, or reuses a stored file of the same
	hash; storage apps hook after_insert); the checks Frappe makes of an uploaded file's URL
	and path do not, and its "added a file" comment finds no Communication yet to comment on.
	"""
	for attachment in msg.attachments:
		file = insert_row(
			"File",
			{
				"file_name": attachment.safe_name,
				"folder": ATTACHMENTS_FOLDER,
				"attached_to_doctype": "Communication",
				"attached_to_name": communication,
				"content": attachment.payload,
				"is_private": 1,
			},
			before=("before_insert",),
			after=("after_insert",),
			flags={"ignore_duplicate_entry_error": True},  # two equal files in a letter are two files
		)
		if attachment.content_id:
			cid = re.compile(r"cid:\s*" + re.escape(attachment.content_id), re.IGNORECASE)
			content = cid.sub(file.file_url, content)
	return content


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
