# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class EmailChannelListener(Document):
	"""A row per running listener, written by usedesk_email.inbound.leases."""
