# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The Ticket and its rules. The rules of what a message does to its ticket live here, as
functions that both ways of writing use: Frappe's own (`on_communication_update`, for mail
and comments saved as documents) and the ingestion's fast path (`apply_message`), which
runs none of a saved ticket's events (see `usedesk_email.db`)."""

import frappe
from frappe.model.document import Document
from frappe.utils import now_datetime

from usedesk_email.db import update_row
from usedesk_email.mail.message import AUTOMATIC, Kind
from usedesk_email.participants import split_lines
from usedesk_email.search_index import index_on_commit

REOPENED_BY_CLIENT = ("Replied", "Resolved")
DONE = ("Resolved", "Closed")


class Ticket(Document):
	def before_insert(self):
		self.set_opened_at()

	def validate(self):
		self.normalise_participants()
		self.track_resolution()

	def on_change(self):
		index_on_commit(self.name)  # after Frappe's own entry of the save: see search_index

	def set_opened_at(self):
		if not self.opened_at:
			self.opened_at = now_datetime()

	def normalise_participants(self):
		if self.client_email:
			self.client_email = self.client_email.strip().lower()
		self.cc_addresses = "\n".join(split_lines(self.cc_addresses))

	def track_resolution(self):
		if self.status == "Resolved" and not self.resolved_at:
			self.resolved_at = now_datetime()
		elif self.status in ("Open", "Replied"):
			self.resolved_at = None
		if self.status in DONE:
			self.waiting_since = None  # nobody is waiting for an answer on a finished ticket

	def on_communication_update(self, communication):
		"""Frappe calls this instead of its own status rules, which would let auto-replies reopen tickets."""
		values = communication_update(self, communication)
		if values:
			self.db_set(values)  # a new modified time, as a save: an open form is now stale
			self.notify_update()


def communication_update(ticket, communication) -> dict:
	"""What a new message changes on its ticket (`ticket`: its status, first_response_at and
	waiting_since): last message times, status, first response, who waits since when."""
	if communication.communication_type != "Communication":
		return {}
	when = communication.communication_date or now_datetime()
	values = {"last_message_at": when}
	if communication.sent_or_received == "Received":
		if communication.flags.usedesk_kind not in AUTOMATIC:
			values["last_client_message_at"] = when
			if ticket.status in REOPENED_BY_CLIENT:
				values.update(status="Open", resolved_at=None)
			if not ticket.waiting_since and ticket.status != "Closed":  # Closed: see follow_up_of
				values["waiting_since"] = when
	elif communication.sent_or_received == "Sent" and not communication.flags.usedesk_send:
		# a reply sent some other way; the app's own are Replied once a letter is out (mark_replied)
		values.update(status="Replied", waiting_since=None)
		if not ticket.first_response_at:
			values["first_response_at"] = when
	return values


def follow_up_of(status: str, kind: Kind) -> bool:
	"""A client's message to a Closed ticket opens a new ticket that refers to it; machines'
	mail (auto-replies, bounces) still joins the closed one."""
	return status == "Closed" and kind not in AUTOMATIC


def apply_message(ticket, communication) -> None:
	"""`on_communication_update` for a message the ingestion wrote: the same rules, without a
	save. `ticket` is the row it found or opened (name, status, first_response_at,
	waiting_since, is_new); a new ticket was inserted with what its first message says."""
	index_on_commit(ticket.name)
	if ticket.get("is_new"):
		return
	values = communication_update(ticket, communication)
	if values:
		# A client's message changes the ticket: an open form must not save over it unawares.
		values["modified"] = now_datetime()
		update_row("Ticket", ticket.name, **values)  # the hot path: one plain UPDATE
		ticket_changed(ticket.name, values["modified"])


def ticket_number() -> str:
	"""The next ticket number; numbers taken in a transaction that was rolled back (a batch
	written again without its failed message) are handed out again first, so they leave no
	gap. What is still unused when a transaction commits is given up."""
	numbers = getattr(frappe.local, "usedesk_ticket_numbers", None)
	if numbers is None:
		numbers = frappe.local.usedesk_ticket_numbers = frappe._dict(taken=[], spare=[])
	if release_ticket_numbers not in frappe.db.after_rollback._functions:
		frappe.db.after_rollback.add(release_ticket_numbers)
		frappe.db.after_commit.add(forget_ticket_numbers)
	number = numbers.spare.pop(0) if numbers.spare else str(frappe.db.get_next_sequence_val("Ticket"))
	numbers.taken.append(number)
	return number


def release_ticket_numbers() -> None:
	numbers = frappe.local.usedesk_ticket_numbers
	numbers.spare = sorted(numbers.spare + numbers.taken, key=int)
	numbers.taken = []


def forget_ticket_numbers() -> None:
	frappe.local.usedesk_ticket_numbers = None


def ticket_changed(name: str, modified) -> None:
	"""What Frappe's notify_update says of a saved document: open forms learn they are stale
	(and refuse to save over the change), the Ticket list refreshes."""
	frappe.publish_realtime(
		"doc_update",
		{"modified": modified, "doctype": "Ticket", "name": name},
		doctype="Ticket",
		docname=name,
		after_commit=True,
	)
	frappe.publish_realtime(
		"list_update", {"doctype": "Ticket", "name": name, "user": frappe.session.user}, after_commit=True
	)


def mark_replied(ticket: str, communication: str) -> None:
	"""A ticket is Replied once a letter of a reply is out (a failed reply leaves it Open),
	unless the client wrote again after that reply; what the client wrote before it is
	answered, so the ticket waits only for what came after."""
	sent_at = frappe.db.get_value("Communication", communication, "communication_date")
	row = frappe.db.get_value(
		"Ticket", ticket, ["status", "first_response_at", "waiting_since"], as_dict=True
	)
	values = {} if row.first_response_at else {"first_response_at": sent_at}
	newer = frappe.db.get_value(
		"Communication",
		{
			"reference_doctype": "Ticket",
			"reference_name": ticket,
			"sent_or_received": "Received",
			"communication_date": (">", sent_at),
		},
		"communication_date",
		order_by="communication_date asc",
	)
	if row.status == "Open" and not newer:
		values["status"] = "Replied"
	if row.waiting_since and row.waiting_since <= sent_at:
		values["waiting_since"] = newer
	if values:
		update_ticket(ticket, values)


def update_ticket(ticket: str, values: dict) -> None:
	"""Write what the app decided about a ticket as a save would (`apply_message` does the
	same for the ingestion): a new modified time, so a form opened before cannot save its
	older values over it (Frappe's save writes every field, read-only ones too), and the
	open forms and lists are told."""
	values["modified"] = now_datetime()
	frappe.db.set_value("Ticket", ticket, values, update_modified=False)
	ticket_changed(ticket, values["modified"])
