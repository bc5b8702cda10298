"""Install hooks: the roles the app's permissions are written for."""

import frappe

ROLES = ("Support Agent", "Support Manager")


def ensure_roles() -> None:
	"""Create the app's roles; doctype permissions name them, so they must exist first."""
	for role in ROLES:
		if not frappe.db.exists("Role", role):
			frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(
				ignore_permissions=True
			)
