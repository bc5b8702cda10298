"""Which ticket a received message joins: by the Message-IDs it refers to, then by the
ticket token in its subject; and only when its sender belongs to that ticket."""

import frappe

from usedesk_email.mail.message import AUTOMATIC, Kind, ParsedMessage
from usedesk_email.mail.thread_keys import find_token
from usedesk_email.participants import split_lines
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import (
	CHANNEL_MESSAGE,
	message_key,
)

TICKET_FIELDS = (
	"name",
	"channel",
	"status",
	"first_response_at",
	"waiting_since",
	"client_email",
	"cc_addresses",
)


def find_ticket(channel, msg: ParsedMessage, sender: str):
	"""By stored Message-IDs first (ours and the clients'), then by the ticket token.

	Returns (ticket, referred): the ticket the message joins (its name, channel, status,
	client and CC participants), or None; and the name of a ticket it referred to without
	being allowed in. Only the ticket's client or a participant joins it: a Message-ID or a
	token is easy to learn, and joining would put a stranger's Cc on the next reply. An
	auto-reply or bounce also joins by the Message-ID of one of our letters; it adds no one.
	"""
	ids = msg.thread_ids
	if msg.kind in (Kind.BOUNCE, Kind.FEEDBACK) and msg.bounced_message_id:
		ids = [msg.bounced_message_id, *ids]
	referred = None
	if ids:
		keys = [message_key(i) for i in ids]
		ledger, ticket = frappe.qb.DocType(CHANNEL_MESSAGE), frappe.qb.DocType("Ticket")
		rows = (
			frappe.qb.from_(ledger)
			.join(ticket)
			.on(ticket.name == ledger.ticket)
			.select(ledger.message_key, ledger.direction, *(ticket[field] for field in TICKET_FIELDS))
			.where((ledger.channel == channel.name) & ledger.message_key.isin(keys))
		).run(as_dict=True)
		by_key: dict = {}
		for row in rows:
			by_key.setdefault(row.pop("message_key"), []).append(row)
		for row in (row for k in keys for row in by_key.get(k, ())):
			direction = row.pop("direction")
			if is_member(row, sender) or (msg.kind in AUTOMATIC and direction == "Outgoing"):
				return ticket_found(row), None
			referred = referred or str(row.name)
	ticket = ticket_by_token(channel, msg.subject)
	if ticket and is_member(ticket, sender):
		return ticket, None
	return None, referred or (ticket and ticket.name)


def is_member(ticket, sender: str) -> bool:
	"""The ticket's client or one of its participants."""
	return bool(sender) and (
		sender == (ticket.client_email or "").lower() or sender in split_lines(ticket.cc_addresses)
	)


def ticket_row(name: str):
	row = frappe.db.get_value("Ticket", name, TICKET_FIELDS, as_dict=True)
	return ticket_found(row) if row else None


def ticket_found(row):
	row.name = str(row.name)  # autoincrement names are numbers; links hold text
	return row


def ticket_by_token(channel, subject: str):
	name = find_token(subject)
	row = ticket_row(name) if name else None
	return row if row and row.channel == channel.name else None
