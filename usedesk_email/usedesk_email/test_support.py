"""Builders shared by the app's Frappe tests (real site, real servers; nothing faked)."""

import frappe


def make_channel(channel_name: str, **values):
	"""An External channel with a complete, valid configuration, changed by `values`."""
	if frappe.db.exists("Email Channel", channel_name):
		frappe.delete_doc("Email Channel", channel_name, force=True)
	doc = frappe.get_doc(
		{
			"doctype": "Email Channel",
			"channel_name": channel_name,
			"incoming_type": "External",
			"outgoing_type": "Internal",
			"imap_username": "agent@example.com",
			"imap_password": "imap-pass",
			"imap_host": "127.0.0.1",
			"imap_port": 993,
			"imap_encryption": "SSL",
			"from_email": "help@example.com",
			**values,
		}
	)
	return doc.insert(ignore_permissions=True)
