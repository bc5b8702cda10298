"""Files from received mail: attachments, inline images, and whole messages kept as `.eml`."""

import re

import frappe

from usedesk_email.db import FILE_INSERT, insert_row, without_upload_limit
from usedesk_email.inbound.bodies import ORIGINAL_NAME
from usedesk_email.mail.message import ParsedMessage

ATTACHMENTS_FOLDER = "Home/Attachments"  # made by Frappe's install, like its own attachments


def keep_original(communication: str, raw: bytes) -> None:
	"""The whole message as received, beside a Communication whose bodies had to be cut."""
	insert_mail_file(communication, ORIGINAL_NAME, raw)


def attach_files(communication: str, msg: ParsedMessage, content: str) -> str:
	"""Private Files for the Communication about to be inserted; returns the content with
	inline `cid:` references pointing at them.

	Written before the Communication itself, so its content is final when inserted. The
	File's own events run (before_insert writes the bytes, or reuses a stored file of the same
	hash; storage apps hook after_insert); see `rows` for what is skipped.
	"""
	for attachment in msg.attachments:
		file = insert_mail_file(communication, attachment.safe_name, attachment.payload)
		if attachment.content_id:
			cid = re.compile(r"cid:\s*" + re.escape(attachment.content_id), re.IGNORECASE)
			content = cid.sub(file.file_url, content)
	return content


def insert_mail_file(communication: str, file_name: str, content: bytes):
	"""A private File from mail. What File refuses as such (an image that is none, for
	Frappe's EXIF stripping) is stored as plain bytes: an attachment never fails its message."""
	try:
		return insert_file(communication, file_name, content)
	except (frappe.QueryDeadlockError, frappe.QueryTimeoutError, frappe.UniqueValidationError):
		raise
	except (frappe.ValidationError, OSError, ValueError, SyntaxError):  # PIL's, before any write
		return insert_file(communication, f"{file_name}.bin", content)


def insert_file(communication: str, file_name: str, content: bytes):
	return insert_row(
		"File",
		{
			"file_name": file_name,
			"folder": ATTACHMENTS_FOLDER,
			"attached_to_doctype": "Communication",
			"attached_to_name": communication,
			"content": content,
			"is_private": 1,
		},
		FILE_INSERT,
		flags={"ignore_duplicate_entry_error": True},  # two equal files in a letter are two files
		prepare=without_upload_limit,
	)
