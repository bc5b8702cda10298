# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import re

import frappe
from frappe import _
from frappe.model.document import Document

DOMAIN = re.compile(
	r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


class EmailChannelSettings(Document):
	def validate(self):
		self.validate_inbound_domain()

	def on_update(self):
		self.move_internal_addresses()

	def validate_inbound_domain(self):
		self.inbound_domain = (self.inbound_domain or "").strip().lstrip("@").rstrip(".").lower()
		if self.inbound_domain and not DOMAIN.match(self.inbound_domain):
			frappe.throw(
				_("{0} is not a domain name (for example: inbound.example.com).").format(
					frappe.bold(self.inbound_domain)
				),
				title=_("Invalid inbound mail domain"),
			)

	def move_internal_addresses(self):
		"""The local part is the channel's identity; only the domain follows the setting."""
		domain = inbound_domain()
		for name, address in frappe.get_all(
			"Email Channel",
			filters={"internal_address": ("is", "set")},
			fields=["name", "internal_address"],
			as_list=True,
		):
			local = address.rsplit("@", 1)[0]
			if address != f"{local}@{domain}":
				frappe.db.set_value("Email Channel", name, "internal_address", f"{local}@{domain}")


def inbound_domain() -> str:
	return frappe.db.get_single_value("Email Channel Settings", "inbound_domain") or frappe.local.site


def max_message_bytes() -> int:
	return (
		int(frappe.db.get_single_value("Email Channel Settings", "max_message_size_mb") or 25) * 1024 * 1024
	)


def inbound_rate_limit() -> int:
	return int(frappe.db.get_single_value("Email Channel Settings", "inbound_rate_limit") or 600)
