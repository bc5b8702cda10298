"""The views of the Ticket list agents work from, as saved filters of the list (Frappe's List
Filter); the Helpdesk workspace's shortcuts open the same views, with their counts.

"My open tickets" names its user, and a saved filter holds values, not expressions: every
user with one of the app's roles gets one of their own (at install, by a patch on existing
sites, and when a user is given a role); the other views are one saved filter for everyone.
"""

import frappe

from usedesk_email.install import ROLES

OPEN = ["Open", "Replied"]  # not yet resolved nor closed
UNASSIGNED = ["_assign", "not like", '%"%']  # Frappe leaves "[]" when the last assignee goes


def shared_views() -> dict[str, list]:
	"""Saved filter name (in the site's language) -> its filters, as the list's filter bar gives them."""
	return {
		frappe._("Waiting for us"): [["Ticket", "waiting_since", "is", "set"]],
		frappe._("Unassigned"): [["Ticket", *UNASSIGNED], ["Ticket", "status", "in", OPEN]],
		frappe._("All tickets"): [],
	}


def own_view(user: str) -> list:
	return [["Ticket", "_assign", "like", f"%{user}%"], ["Ticket", "status", "in", OPEN]]


def ensure_saved_filters() -> None:
	"""The shared views, and each agent's own, where missing (install and patch)."""
	for name, filters in shared_views().items():
		save_filter(name, filters, "")
	has_role = frappe.qb.DocType("Has Role")
	users = (
		frappe.qb.from_(has_role)
		.select(has_role.parent)
		.distinct()
		.where((has_role.parenttype == "User") & has_role.role.isin(ROLES))
	).run(pluck=True)
	for user in users:
		ensure_own_view(user)


def on_user_update(doc, method=None) -> None:
	"""A user given one of the app's roles gets their own view."""
	if {row.role for row in doc.get("roles") or []} & set(ROLES):
		ensure_own_view(doc.name)


def ensure_own_view(user: str) -> None:
	language = frappe.db.get_value("User", user, "language") or None
	save_filter(frappe._("My open tickets", lang=language), own_view(user), user)


def save_filter(name: str, filters: list, user: str) -> None:
	"""A saved filter of the Ticket list, unless one of that name is there (it may be edited)."""
	if frappe.db.exists(
		"List Filter", {"reference_doctype": "Ticket", "filter_name": name, "for_user": user}
	):
		return
	frappe.get_doc(
		{
			"doctype": "List Filter",
			"reference_doctype": "Ticket",
			"filter_name": name,
			"for_user": user,
			"filters": frappe.as_json(filters, indent=None),
		}
	).insert(ignore_permissions=True)
