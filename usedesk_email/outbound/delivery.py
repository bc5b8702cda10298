"""Sending an agent's reply: composed once into letters, then delivered by a background job.

The letters of a reply (one per recipient, plus the BCC copy) are composed on the job's
first run and stored in the ledger with their bytes, so every retry sends the same mail
under the same Message-IDs. A letter is marked Sending and committed before its SMTP
transaction; one found still Sending later (the worker died mid-send) may have been
delivered, so it becomes Uncertain and waits for a person instead of being resent. How the
letters leave is the channel's transport's (`transports`); what they say is `drafts`'.
"""

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime

from usedesk_email.db import insert_plain, named_lock
from usedesk_email.mail.compose import compose_reply
from usedesk_email.outbound import transports
from usedesk_email.outbound.drafts import draft_for, recipients_of
from usedesk_email.outbound.sent_folder import due as due_for_sent_folder
from usedesk_email.outbound.sent_folder import save_to_sent
from usedesk_email.outbound.transports.base import FAILED, SENT, TEMPORARY, LetterOutcome
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import (
	CHANNEL_MESSAGE,
	dedupe_key,
	message_key,
)
from usedesk_email.usedesk_email.doctype.ticket.ticket import mark_replied, update_ticket

SEND_QUEUE = "short"
RETRY_MINUTES = (1, 5, 15, 60, 180, 360)  # after the last one a temporary failure is final
TO_SEND = ("Queued", "Temporary failure")
PROBLEMS = ("Failed", "Uncertain")  # a person decides whether to send again
SHOWN = (*PROBLEMS, "Temporary failure", "Refused")  # on the ticket, while it lasts
DELIVERED = ("Sent", "Handed to Email Queue")  # the reply is out: the ticket is Replied


def queue_sending(doc, method=None) -> None:
	"""Communication after_insert: a reply made by this app goes out after the commit."""
	if doc.flags.usedesk_send:
		enqueue_send(doc.name)


def enqueue_send(communication: str) -> None:
	frappe.enqueue(
		"usedesk_email.outbound.delivery.send_communication",
		queue=SEND_QUEUE,
		job_id=f"usedesk_email:send:{communication}",
		deduplicate=True,
		enqueue_after_commit=True,
		communication=communication,
	)


def send_communication(communication: str) -> None:
	"""Compose (first run only) and deliver the letters of one reply; never two workers at once."""
	with named_lock("usedesk_send", communication) as acquired:
		if acquired:
			send_locked(communication)


def send_locked(communication: str) -> None:
	"""The job's work, under the reply's lock."""
	comm = frappe.get_doc("Communication", communication)
	ticket = frappe.get_doc("Ticket", comm.reference_name)
	channel = frappe.get_doc("Email Channel", ticket.channel)
	mark_interrupted_as_uncertain(comm.name)
	letters = letters_of(comm.name)
	if not letters:
		if not compose_letters(comm, ticket, channel):
			return
		letters = letters_of(comm.name)
	rows = [row for row in letters if row.status in TO_SEND and is_due(row)]
	if rows:
		deliver(channel, comm, rows)
	record_status(comm.name, str(ticket.name))
	save_to_sent(channel, comm.name)  # after the letters are out; failures go to the channel


def deliver(channel, comm, rows: list) -> None:
	"""Hand the due letters to the channel's transport and record what became of each."""
	transport = transports.for_channel(channel)
	if transport.marks_sending:
		for row in rows:
			frappe.db.set_value(
				CHANNEL_MESSAGE, row.name, {"status": "Sending", "attempts": (row.attempts or 0) + 1}
			)
		frappe.db.commit()
	by_name = {row.name: row for row in rows}
	for outcome in transport.send(channel, comm, rows):
		record_outcome(by_name[outcome.letter], outcome)
	frappe.db.commit()


def record_outcome(row, outcome: LetterOutcome) -> None:
	if outcome.status == TEMPORARY:
		retry_later(row, outcome.error or "")
		return
	values = {"status": outcome.status, "error": outcome.error}
	if outcome.status == SENT:
		values["next_attempt_at"] = None
	if outcome.email_queue:
		values["email_queue"] = outcome.email_queue
	frappe.db.set_value(CHANNEL_MESSAGE, row.name, values)


def letters_of(communication: str) -> list:
	return frappe.get_all(
		CHANNEL_MESSAGE,
		filters={"communication": communication, "direction": "Outgoing"},
		fields=["name", "recipient", "message_id", "status", "attempts", "next_attempt_at", "bcc", "raw"],
		order_by="creation asc, bcc asc",
	)


def is_due(row) -> bool:
	return not row.next_attempt_at or row.next_attempt_at <= now_datetime()


def mark_interrupted_as_uncertain(communication: str) -> None:
	frappe.db.set_value(
		CHANNEL_MESSAGE,
		{"communication": communication, "status": "Sending"},
		{
			"status": "Uncertain",
			"error": _("The sending was interrupted; the letter may or may not have arrived."),
		},
	)
	frappe.db.commit()


def compose_letters(comm, ticket, channel) -> bool:
	"""Store the reply's letters; a reply that cannot be composed is kept, marked failed (a
	ledger row without a letter, which Retry Sending removes to compose again)."""
	try:
		composed = compose_reply(draft_for(comm, ticket, channel))
	except Exception as exc:
		frappe.db.rollback()
		comm.db_set("delivery_status", "Error")
		ledger_row(channel, ticket, comm, "", "Failed", _("The reply could not be composed: {0}").format(exc))
		record_problem(str(ticket.name))
		frappe.db.commit()
		return False
	sender = composed.letters[0].sender
	for letter in composed.letters:
		insert_plain(
			CHANNEL_MESSAGE,
			{
				"channel": channel.name,
				"dedupe_key": dedupe_key(letter.message_id),
				"message_key": message_key(letter.message_id),
				"message_id": letter.message_id,
				"direction": "Outgoing",
				"ticket": str(ticket.name),
				"communication": comm.name,
				"recipient": letter.recipient,
				"bcc": letter.bcc,
				"status": "Queued",
				"raw": letter.raw.decode("ascii"),
			},
		)
	for address, why in composed.refused:
		ledger_row(channel, ticket, comm, address, "Refused", why)
	comm.db_set(
		{
			"subject": composed.subject,
			"message_id": composed.letters[0].message_id,
			"sender": sender,
			"delivery_status": "Sending",
		}
	)
	frappe.db.commit()
	return True


def ledger_row(channel, ticket, comm, recipient: str, status: str, error: str) -> None:
	"""A row for what got no letter: an address refused, or a reply that could not be composed."""
	key = dedupe_key(f"{comm.name}:{status}:{recipient}:{frappe.generate_hash(length=8)}")
	insert_plain(
		CHANNEL_MESSAGE,
		{
			"channel": channel.name,
			"dedupe_key": key,
			"message_key": key,
			"direction": "Outgoing",
			"ticket": str(ticket.name),
			"communication": comm.name,
			"recipient": recipient,
			"status": status,
			"error": error,
		},
	)


def retry_later(row, error: str) -> None:
	"""Back off; after the last delay the failure is final and shows on the ticket."""
	attempt = (row.attempts or 0) + 1
	if attempt > len(RETRY_MINUTES):
		frappe.db.set_value(
			CHANNEL_MESSAGE,
			row.name,
			{"status": FAILED, "error": _("Gave up after {0} attempts: {1}").format(attempt, error)},
		)
		return
	frappe.db.set_value(
		CHANNEL_MESSAGE,
		row.name,
		{
			"status": "Temporary failure",
			"error": error,
			"next_attempt_at": add_to_date(now_datetime(), minutes=RETRY_MINUTES[attempt - 1]),
		},
	)


def record_status(communication: str, ticket: str) -> None:
	"""The reply's delivery status from its letters, the ticket's status once a letter is out,
	and the ticket's list of delivery problems."""
	statuses = {row.status for row in letters_of(communication)} - {"Refused"}
	if statuses & set(PROBLEMS):
		status = "Error"
	elif statuses and statuses <= {"Sent"}:
		status = "Sent"
	elif "Handed to Email Queue" in statuses:
		status = None  # Frappe's Email Queue keeps the Communication's status from here on
	else:
		status = "Sending"
	if status:
		frappe.db.set_value("Communication", communication, "delivery_status", status)
	if statuses & set(DELIVERED):
		mark_replied(ticket, communication)
	record_problem(ticket)
	frappe.db.commit()


def record_problem(ticket: str) -> None:
	"""The banner on the ticket: letters that failed, wait or are uncertain, and addresses that
	were refused while they are still participants."""
	rows = frappe.get_all(
		CHANNEL_MESSAGE,
		filters={"ticket": ticket, "direction": "Outgoing", "status": ("in", SHOWN)},
		fields=["recipient", "status", "error", "communication"],
		order_by="creation asc",
	)
	row = frappe.db.get_value(
		"Ticket", ticket, ["client_email", "cc_addresses", "delivery_problem"], as_dict=True
	)
	participants = set(recipients_of(row))
	whole_reply = _("the reply")  # a row of a reply that could not be composed names no one
	lines = [
		f"{_(r.status)}: {r.recipient or whole_reply} ({r.communication}): {r.error or ''}".strip()
		for r in rows
		if r.status != "Refused" or r.recipient.lower() in participants
	]
	problem = "\n".join(dict.fromkeys(lines)) or None
	if problem != (row.delivery_problem or None):
		# A new modified time: a form opened before would save the old banner back over it.
		update_ticket(ticket, {"delivery_problem": problem})


def retry_due() -> None:
	"""Scheduler, every minute: send again what is due, and try the Sent folder again."""
	for communication in {*due_replies(), *due_for_sent_folder()}:
		enqueue_send(communication)


def due_replies() -> list[str]:
	"""Replies with a letter whose temporary failure has waited long enough."""
	return frappe.get_all(
		CHANNEL_MESSAGE,
		filters={
			"direction": "Outgoing",
			"status": "Temporary failure",
			"next_attempt_at": ("<=", now_datetime()),
		},
		pluck="communication",
		distinct=True,
	)


def replies_with_problems(ticket: str) -> list[str]:
	return frappe.get_all(
		CHANNEL_MESSAGE,
		filters={"ticket": ticket, "direction": "Outgoing", "status": ("in", PROBLEMS)},
		pluck="communication",
		distinct=True,
	)


def retry_failed(communication: str) -> None:
	"""A person's decision: send the failed and the uncertain letters of a reply again (a
	reply that could not be composed is composed again)."""
	frappe.db.delete(
		CHANNEL_MESSAGE,
		{
			"communication": communication,
			"direction": "Outgoing",
			"status": "Failed",
			"raw": ("is", "not set"),
		},
	)
	frappe.db.set_value(
		CHANNEL_MESSAGE,
		{"communication": communication, "direction": "Outgoing", "status": ("in", PROBLEMS)},
		{"status": "Queued", "attempts": 0, "next_attempt_at": None, "error": None},
	)
	ticket = frappe.db.get_value("Communication", communication, "reference_name")
	record_problem(ticket)
	enqueue_send(communication)
