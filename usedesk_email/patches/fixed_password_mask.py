"""Channel rows kept Frappe's mask of a password, "*" * len(password): its length.

Every non-empty Password column of Email Channel becomes the app's fixed mask, and so do the
masks in the channel's change history (Version), which showed the old and the new length.
"""

import json

import frappe
from frappe.query_builder.functions import Coalesce

from usedesk_email.usedesk_email.doctype.email_channel.email_channel import PASSWORD_MASK

DOCTYPE = "Email Channel"


def execute() -> None:
	fields = [df.fieldname for df in frappe.get_meta(DOCTYPE).get("fields", {"fieldtype": "Password"})]
	table = frappe.qb.DocType(DOCTYPE)
	for field in fields:
		frappe.qb.update(table).set(table[field], PASSWORD_MASK).where(Coalesce(table[field], "") != "").run()
	for name, data in frappe.get_all(
		"Version", {"ref_doctype": DOCTYPE}, ["name", "data"], as_list=True, order_by=None
	):
		masked = remask_version(data, fields)
		if masked != data:
			frappe.db.set_value("Version", name, "data", masked, update_modified=False)


def remask_version(data: str | None, fields: list[str]) -> str | None:
	try:
		version = json.loads(data or "")
	except ValueError:
		return data
	if not isinstance(version, dict):
		return data
	changed = False
	for row in version.get("changed") or []:
		if isinstance(row, list) and len(row) == 3 and row[0] in fields:
			for i in (1, 2):
				if row[i] and row[i] != PASSWORD_MASK:
					row[i] = PASSWORD_MASK
					changed = True
	return frappe.as_json(version) if changed else data
