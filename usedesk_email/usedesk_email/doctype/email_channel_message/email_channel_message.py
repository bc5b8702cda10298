# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class EmailChannelMessage(Document):
	pass


def on_doctype_update():
	"""The unique index is what makes ingestion exactly-once, whatever the number of workers."""
	frappe.db.add_unique(
		"Email Channel Message", ["channel", "dedupe_key"], constraint_name="unique_channel_dedupe_key"
	)
	frappe.db.add_index("Email Channel Message", ["channel", "message_key"], index_name="channel_message_key")
