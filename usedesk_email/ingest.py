"""Store incoming mail in tickets: every message in exactly one ticket, exactly once.

The ledger (Email Channel Message) has a unique index on (channel, dedupe key); its row is
inserted first in the transaction, so a retry or a concurrent worker holding the same
message waits on that index and then fails as a duplicate instead of storing it twice.
"""

import hashlib
import html
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

import frappe
from frappe.utils import convert_utc_to_system_timezone, now_datetime

from usedesk_email.channel_config import own_addresses
from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.quote_split import collapsed
from usedesk_email.mail.thread_keys import find_token
from usedesk_email.usedesk_email.doctype.ticket.ticket import communication_update

LEDGER = "Email Channel Message"
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
AUTOMATIC = (Kind.AUTO_REPLY, Kind.BOUNCE)
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


def sortable_name() -> str:
	"""A name for a new row that sorts after those made before it (milliseconds since 1970 in
	base 36, then 6 random characters): rows go in at one place of their table's primary key
	rather than at a random one, so writing to a table larger than the database's memory
	does not first read a random page of it from disk."""
	millis, stamp = time.time_ns() // 1_000_000, ""
	while millis:
		millis, digit = divmod(millis, 36)
		stamp = BASE36[digit] + stamp
	return stamp.rjust(9, "0") + "".join(secrets.choice(BASE36) for _ in range(6))


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
		doc.name = sortable_name()
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
	rows = [{"name": sortable_name(), **stamp, **row} for row in rows]
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
	communication = sortable_name()
	insert_plain(LEDGER, {**ledger, "ticket": name, "communication": communication, "outcome": "stored"})
	participants = cc_participants(msg, own, sender)
	message_date = local_time(msg)
	if new_ticket:
		ticket = open_ticket(channel, msg, participants, name, previous, message_date)
	else:
		add_participants(ticket, participants)
	add_communication(ticket, msg, communication, [sender, *participants], message_date)
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


def open_ticket(
	channel, msg: ParsedMessage, participants: list[str], name: str, previous: str | None, message_date
):
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
			"opened_at": message_date,
			"last_message_at": message_date,
			"previous_ticket": previous,
		},
		before=("before_insert", "before_validate", "validate", "before_save"),
		after=("after_insert", "on_update"),  # assignment rules, notifications, other apps' hooks
	)
	ticket.notify_update()  # the desk's Ticket list shows it at once
	ticket.run_method("on_change")  # milestone trackers, energy point rules
	return frappe._dict(name=name, status=ticket.status, first_response_at=None, is_new=True)


def contact_of(email: str) -> str | None:
	return next((name for doctype, name in timeline_links_of(email) if doctype == "Contact"), None)


def add_communication(ticket, msg: ParsedMessage, name: str, people: list[str], message_date) -> None:
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
			"communication_date": message_date,
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


def timeline_links_of(email: str) -> tuple[tuple[str, str], ...]:
	"""The Contact of an address (the first, as Frappe takes it) and what it links to."""
	email = email.lower()
	known = getattr(frappe.local, "usedesk_timeline_links", None)
	if known is None:
		return query_timeline_links({email}).get(email, ())
	if email not in known:
		load_timeline_links([email])
	return known[email]


def remember_timeline_links() -> None:
	"""From now until `forget_timeline_links`, an address's Contact is looked up once: a
	batch of mail looks up the addresses of all its messages in one query first."""
	if getattr(frappe.local, "usedesk_timeline_links", None) is None:
		frappe.local.usedesk_timeline_links = {}


def forget_timeline_links() -> None:
	frappe.local.usedesk_timeline_links = None


def load_timeline_links(emails: Iterable[str]) -> None:
	known = frappe.local.usedesk_timeline_links
	wanted = {email.lower() for email in emails if email} - known.keys()
	if wanted:
		found = query_timeline_links(wanted)
		known.update((email, found.get(email, ())) for email in wanted)


def query_timeline_links(emails: set[str]) -> dict[str, tuple[tuple[str, str], ...]]:
	rows = frappe.db.sql(
		"""SELECT contact.email_id, contact.parent, link.link_doctype, link.link_name
		FROM `tabContact Email` contact
		LEFT JOIN `tabDynamic Link` link ON link.parenttype='Contact' AND link.parent=contact.parent
		WHERE contact.email_id IN %s""",
		(list(emails),),
	)
	found: dict[str, list[tuple[str, str]]] = {}
	for email, contact, doctype, name in rows:
		links = found.setdefault(email.lower(), [("Contact", contact)])
		if contact == links[0][1] and doctype:
			links.append((doctype, name))
	return {email: tuple(links) for email, links in found.items()}


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
