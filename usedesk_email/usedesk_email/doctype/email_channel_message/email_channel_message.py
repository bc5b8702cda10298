# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import hashlib

import frappe
from frappe.model.document import Document


class EmailChannelMessage(Document):
	pass


def on_doctype_update():
	"""The unique index is what makes ingestion exactly-once, whatever the number of workers."""
	frappe.db.add_unique(
		CHANNEL_MESSAGE, ["channel", "dedupe_key"], constraint_name="unique_channel_dedupe_key"
	)
	frappe.db.add_index(CHANNEL_MESSAGE, ["channel", "message_key"], index_name="channel_message_key")


# One row per message that crossed a channel. Received: the de-duplication and threading
# record (keyed by Message-ID and sender). Sent: one letter of a reply, with its bytes and
# delivery status.
CHANNEL_MESSAGE = "Email Channel Message"


def message_key(message_id: str) -> str:
	"""What threading looks a Message-ID up by, whoever sent it."""
	return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def dedupe_key(message_id: str, sender: str = "") -> str:
	"""What makes a message a duplicate: its Message-ID from the same sender, so a stranger who
	sends a Message-ID first cannot make the real message with it "a duplicate". Our own
	letters (no sender given) are keyed by their Message-ID alone."""
	return message_key(f"{message_id}\n{sender}" if sender else message_id)
