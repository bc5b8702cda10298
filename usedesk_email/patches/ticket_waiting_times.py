"""Tickets from before the list showed who waits: the client's last message time, and since
when the ticket waits for an answer (the client's first message after the last reply that
went out), read from the stored messages. Auto-replies and bounces (by the ledger's kind)
are no client's message; a finished ticket waits for no one. Modified times stay."""

import frappe

from usedesk_email.mail.message import AUTOMATIC
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE
from usedesk_email.usedesk_email.doctype.ticket.ticket import DONE

CHUNK = 1000


def execute() -> None:
	last = 0
	while tickets := frappe.get_all(
		"Ticket",
		filters={"name": (">", last)},
		fields=["name", "status", "last_client_message_at", "waiting_since"],
		order_by="name asc",
		limit=CHUNK,
	):
		fill(tickets)
		last = tickets[-1].name


def fill(tickets: list) -> None:
	names = [str(t.name) for t in tickets]
	messages = frappe.get_all(
		"Communication",
		filters={
			"reference_doctype": "Ticket",
			"reference_name": ("in", names),
			"communication_type": "Communication",
		},
		fields=["name", "reference_name", "sent_or_received", "delivery_status", "communication_date"],
		order_by="communication_date asc, creation asc",
	)
	automatic = set(
		frappe.get_all(
			CHANNEL_MESSAGE,
			filters={"ticket": ("in", names), "kind": ("in", [kind.value for kind in AUTOMATIC])},
			pluck="communication",
		)
	)
	found = {name: frappe._dict(last_client_message_at=None, waiting_since=None) for name in names}
	for m in messages:
		times = found[m.reference_name]
		if m.sent_or_received == "Received" and m.name not in automatic:
			times.last_client_message_at = m.communication_date
			times.waiting_since = times.waiting_since or m.communication_date
		elif m.sent_or_received == "Sent" and m.delivery_status != "Error":
			times.waiting_since = None
	for ticket in tickets:
		times = found[str(ticket.name)]
		if ticket.status in DONE:
			times.waiting_since = None
		if times != {k: ticket[k] for k in times}:
			frappe.db.set_value("Ticket", ticket.name, times, update_modified=False)
