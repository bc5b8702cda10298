"""Store incoming mail in tickets: every message in exactly one ticket, exactly once.

The ledger (Email Channel Message) has a unique index on (channel, dedupe key); its row is
inserted first in the transaction, so a retry or a concurrent worker holding the same
message waits on that index and then fails as a duplicate instead of storing it twice.
"""

from dataclasses import dataclass

import frappe
from frappe.core.doctype.file.utils import get_content_hash
from frappe.utils import convert_utc_to_system_timezone, now_datetime

from usedesk_email.channel.config import own_addresses
from usedesk_email.contacts import contact_of, pending_links, timeline_links
from usedesk_email.db import (
	COMMUNICATION_INSERT,
	TICKET_INSERT,
	insert_plain,
	insert_row,
	run_after,
	sortable_name,
	update_row,
)
from usedesk_email.inbound.bodies import fitted_bodies
from usedesk_email.inbound.files import attach_files, insert_mail_file, keep_original
from usedesk_email.inbound.threading import find_ticket
from usedesk_email.mail.message import AUTOMATIC, Address, Kind, ParsedMessage
from usedesk_email.participants import MAX_PARTICIPANTS, add_participants, split_lines
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import (
	CHANNEL_MESSAGE,
	dedupe_key,
	message_key,
)
from usedesk_email.usedesk_email.doctype.ticket.ticket import (
	apply_message,
	follow_up_of,
	ticket_number,
)

SUBJECT_LENGTH = 998  # RFC 5322's line limit; longer subjects are cut, the raw mail is kept


@dataclass
class IngestResult:
	ticket: str | None = None
	communication: str | None = None
	duplicate: bool = False
	outcome: str = "stored"  # stored | duplicate | ignored:<why> | failed
	failure: str | None = None
	message_id: str = ""
	key: str = ""  # the ledger's dedupe key


def store(channel, msg: ParsedMessage, source: str) -> IngestResult:
	"""Decide where the message goes, then write: ledger row first, ticket, Communication.

	A duplicate fails on the ledger row before anything else is written, and before a new
	ticket takes its number (see `claim_ledger_row`).
	"""
	own = own_addresses(channel)
	sender = msg.sender.email.lower() if msg.sender else ""
	ticket, referred = find_ticket(channel, msg, sender)
	ledger = {
		"channel": channel.name,
		"dedupe_key": dedupe_key(msg.message_id, sender),
		"message_key": message_key(msg.message_id),
		"raw_sha256": msg.raw_hash,
		"message_id": msg.message_id,
		"direction": "Incoming",
		"kind": msg.kind.value,
		"imap_uid": source,
	}
	if sender in own:
		return ignore(ledger, ticket and ticket.name, "ignored:own-address")
	if msg.kind in AUTOMATIC and not ticket:
		return ignore(ledger, None, f"ignored:{msg.kind.value}")
	if msg.kind == Kind.BULK and not ticket and channel.bulk_mail == "Ignore":
		return ignore(ledger, None, "ignored:bulk")
	if not sender:
		raise ValueError(
			frappe._("The message has no usable sender address (From); it cannot open or join a ticket.")
		)

	previous = ticket.name if ticket and follow_up_of(ticket.status, msg.kind) else None
	new_ticket = not ticket or previous
	communication = sortable_name()
	name = claim_ledger_row(ledger, communication, None if new_ticket else ticket.name)
	participants = [] if msg.kind in AUTOMATIC else cc_participants(msg, own, sender)
	message_date = local_time(msg)
	if new_ticket:
		ticket = open_ticket(channel, msg, participants, name, previous or referred, message_date)
	else:
		known = {*split_lines(ticket.cc_addresses), (ticket.client_email or "").lower()}
		if set(participants) - known:  # the row is locked only when someone may be added
			add_participants(ticket.name, participants)
	add_communication(ticket, msg, communication, [sender, *participants], message_date)
	return IngestResult(ticket=name, communication=communication)


def claim_ledger_row(ledger: dict, communication: str, ticket: str | None) -> str:
	"""Insert the message's ledger row and return its ticket's name.

	For a new ticket the row goes in first and the number is taken after it, so a duplicate
	(which fails on the row's unique index) never uses up a ticket number.
	"""
	row = {**ledger, "name": sortable_name(), "communication": communication, "outcome": "stored"}
	insert_plain(CHANNEL_MESSAGE, {**row, "ticket": ticket})
	if ticket:
		return ticket
	number = ticket_number()
	update_row(CHANNEL_MESSAGE, row["name"], ticket=number)
	return number


def keep_differing_copy(channel, msg: ParsedMessage) -> str:
	"""A duplicate's bytes, kept beside the stored message when they differ from its own (a
	forged copy, another relay's headers): nothing received is lost. Returns its dedupe key."""
	key = dedupe_key(msg.message_id, msg.sender.email.lower() if msg.sender else "")
	row = frappe.db.get_value(
		CHANNEL_MESSAGE,
		{"channel": channel.name, "dedupe_key": key},
		["communication", "raw_sha256"],
		as_dict=True,
	)
	if row and row.communication and row.raw_sha256 and row.raw_sha256 != msg.raw_hash:
		copy = {"attached_to_doctype": "Communication", "attached_to_name": row.communication}
		if not frappe.db.exists("File", {**copy, "content_hash": get_content_hash(msg.raw)}):
			insert_mail_file(row.communication, f"duplicate-{msg.raw_hash[:12]}.eml", msg.raw)
	return key


def ignore(ledger: dict, ticket: str | None, outcome: str) -> IngestResult:
	insert_plain(CHANNEL_MESSAGE, {**ledger, "ticket": ticket, "outcome": outcome})
	return IngestResult(ticket=ticket, outcome=outcome)


def cc_participants(msg: ParsedMessage, own: set[str], sender: str) -> list[str]:
	seen: dict[str, None] = {}
	for address in [*msg.to, *msg.cc]:
		email = address.email.lower()
		if email and email not in own and email != sender:
			seen.setdefault(email, None)
	return list(seen)[:MAX_PARTICIPANTS]


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
			"last_client_message_at": message_date,  # a new ticket is opened only by a person
			"waiting_since": message_date,
			"previous_ticket": previous,
		},
		TICKET_INSERT,
		owner=sender.email.lower(),  # the client opened it, not the poll's Administrator or Guest
	)
	ticket.notify_update()  # the desk's Ticket list shows it at once
	return frappe._dict(name=name, is_new=True)


def add_communication(ticket, msg: ParsedMessage, name: str, people: list[str], message_date) -> None:
	content, text = fitted_bodies(msg)
	if len(content) + len(text) < len(msg.new_html) + len(msg.quoted_html) + len(msg.text):
		keep_original(name, msg.raw)
	content = attach_files(name, msg, content)
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
			"text_content": text,
			"sender": msg.sender.email,
			"sender_full_name": msg.sender.name or msg.sender.email,
			"recipients": ", ".join(a.email for a in msg.to),
			"cc": ", ".join(a.email for a in msg.cc),
			"message_id": msg.message_id,
			"communication_date": message_date,
			"reference_doctype": "Ticket",
			"reference_name": ticket.name,
			"has_attachment": 1 if msg.attachments or text is not msg.text else 0,
			"user": frappe.session.user,
		},
		COMMUNICATION_INSERT,
		html=("content",),  # sanitised by the engine
		owner=msg.sender.email.lower(),
		defer_after=True,  # its timeline links and the ticket's update come first
	)
	comm.flags.in_receive = True
	comm.flags.usedesk_kind = msg.kind
	links = timeline_links(people)
	for doctype, link_name in links:
		comm.add_link(doctype, link_name)  # seen by the after_insert hooks
	apply_message(ticket, comm)
	run_after(comm, COMMUNICATION_INSERT)  # the desk's live timeline, and other apps' hooks
	pending_links().extend(
		{"parent": name, "parenttype": "Communication", "parentfield": "timeline_links"}
		| {"idx": idx, "link_doctype": doctype, "link_name": link_name}
		for idx, (doctype, link_name) in enumerate(links, 1)
	)
