"""Permission hooks: what the app's roles may read of Frappe's own doctypes."""

import frappe

from usedesk_email.install import ROLES


def communication(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""The app's roles read Communications only for the attachments and inline images of
	tickets (install.grant_communication_read); any other Communication stays as closed to them
	as it was, unless another role of the user opens it."""
	if doc.reference_doctype == "Ticket":
		return None  # Frappe's own check: whoever may read the ticket
	roles = set(frappe.get_roles(user)) - set(ROLES)
	readers = {p.role for p in frappe.get_meta("Communication").permissions if p.read and not p.if_owner}
	if roles & readers or doc.owner == (user or frappe.session.user):
		return None  # another role reads it, or Frappe's "All: if owner" rule does
	return False
