"""What could not be stored: the whole raw message, kept with the reason for an admin to retry."""

import hashlib

import frappe

from usedesk_email.db import as_text, without_upload_limit
from usedesk_email.mail.parse import parse_message


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
	)
	without_upload_limit(file)
	file.insert(ignore_permissions=True)
	doc.db_set("raw_file", file.file_url)
	return doc.name


def header_summary(raw: bytes) -> dict:
	"""Best-effort subject and sender for the failure list; the parser may be what failed."""
	try:
		msg = parse_message(raw)
		return {
			"subject": as_text(msg.subject or "")[:990],
			"sender": as_text(msg.sender.email if msg.sender else "")[:140],
			"message_id": msg.message_id,
		}
	except Exception:
		return {"subject": "", "sender": "", "message_id": ""}
