"""A channel's Last Error holds a mail server's words, and the form shows the field as HTML:
it is now stored as text, `<` and `>` as entities, as a form stores what is typed into it.
The rows written before get the same treatment."""

import frappe

from usedesk_email.db import as_text


def execute() -> None:
	for name, error in frappe.get_all(
		"Email Channel",
		or_filters=[["last_error", "like", "%<%"], ["last_error", "like", "%>%"]],
		fields=["name", "last_error"],
		as_list=True,
	):
		frappe.db.set_value("Email Channel", name, "last_error", as_text(error), update_modified=False)
