"""A ticket's conversation as REST clients read it, and a conversation an agent starts.

Frappe's own Communication list hides mail that does not belong to the reader's e-mail
accounts, so clients read a ticket here: by their permission on the ticket, nothing else.
"""

import frappe
from frappe import _

from usedesk_email.db import from_text
from usedesk_email.mail.quote_split import parts_of
from usedesk_email.outbound.replies import create_reply
from usedesk_email.participants import parse_typed
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

MAX_LIMIT = 200
LETTER_FIELDS = ["communication", "recipient", "bcc", "status", "attempts", "error", "modified"]


def conversation(ticket: str, start: int = 0, limit: int = 50) -> dict:
	"""The ticket's messages, oldest first, `limit` (at most MAX_LIMIT) from `start`."""
	doc = frappe.get_doc("Ticket", ticket)
	doc.check_permission("read")
	limit = max(1, min(int(limit), MAX_LIMIT))
	filters = {
		"reference_doctype": "Ticket",
		"reference_name": str(doc.name),
		"communication_type": "Communication",
	}
	rows = frappe.get_all(
		"Communication",
		filters=filters,
		fields=[
			"name",
			"sent_or_received",
			"sender",
			"sender_full_name",
			"recipients",
			"cc",
			"communication_date",
			"subject",
			"content",
			"text_content",
			"delivery_status",
			"message_id",
		],
		order_by="communication_date asc, creation asc",
		limit_start=max(0, int(start)),
		limit_page_length=limit,
	)
	names = [row.name for row in rows] or ["-"]
	files = frappe.get_all(
		"File",
		filters={"attached_to_doctype": "Communication", "attached_to_name": ("in", names)},
		fields=["attached_to_name", "file_name", "file_size", "file_url"],
		order_by="creation asc",
	)
	letters = frappe.get_all(
		CHANNEL_MESSAGE,
		filters={"communication": ("in", names), "direction": "Outgoing"},
		fields=LETTER_FIELDS,
		order_by="creation asc",
	)
	return {
		"ticket": str(doc.name),
		"total": frappe.db.count("Communication", filters),
		"start": max(0, int(start)),
		"messages": [message(row, files, letters) for row in rows],
	}


def message(row, files: list, letters: list) -> dict:
	new, history = parts_of(row.content or "")
	sent = row.sent_or_received == "Sent"
	return {
		"name": row.name,
		"direction": "sent" if sent else "received",
		"sender": row.sender,
		"sender_name": from_text(row.sender_full_name or ""),
		"recipients": split_list(row.recipients),
		"cc": split_list(row.cc),
		"sent_at": row.communication_date,
		"subject": from_text(row.subject or ""),
		"message_id": row.message_id,
		"html": new,
		"quoted_html": history,
		"text": row.text_content or "",
		"attachments": [
			{"name": f.file_name, "size": f.file_size, "url": f.file_url}
			for f in files
			if f.attached_to_name == row.name
		],
		**(
			{
				"delivery_status": row.delivery_status,
				"letters": [
					{key: letter[key] for key in LETTER_FIELDS if key != "communication"}
					for letter in letters
					if letter.communication == row.name
				],
			}
			if sent
			else {}
		),
	}


def split_list(value: str | None) -> list[str]:
	return [a.strip() for a in (value or "").split(",") if a.strip()]


def start_conversation(
	channel: str,
	to: str,
	subject: str,
	content: str,
	cc: list[str] | None = None,
	attachments: list[str] | None = None,
) -> dict:
	"""A ticket whose client is `to`, and its first letter through the channel."""
	if not frappe.db.exists("Email Channel", channel):
		frappe.throw(_("There is no channel {0}.").format(frappe.bold(channel)), frappe.DoesNotExistError)
	if not (subject or "").strip():
		frappe.throw(_("A new conversation needs a subject."), title=_("No subject"))
	addresses = parse_typed([to])
	if len(addresses) != 1:
		frappe.throw(
			_("{0} is not one e-mail address.").format(frappe.bold(to)), frappe.InvalidEmailAddressError
		)
	ticket = frappe.get_doc(
		{
			"doctype": "Ticket",
			"subject": subject.strip(),
			"status": "Open",
			"channel": channel,
			"client_email": addresses[0],
		}
	)
	ticket.insert()  # the caller's create permission on Ticket
	answer = create_reply(str(ticket.name), content, attachments, cc)
	return {"ticket": str(ticket.name), **answer}
