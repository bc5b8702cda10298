"""The test site as a desk user finds it: set up, so the desk opens (the browser tests)."""

import frappe


def complete_setup() -> None:
	"""Frappe's setup wizard, completed once with its defaults; nothing when it already ran."""
	if frappe.get_system_settings("setup_complete"):
		return
	from frappe.utils.install import complete_setup_wizard

	complete_setup_wizard()
	frappe.db.commit()
