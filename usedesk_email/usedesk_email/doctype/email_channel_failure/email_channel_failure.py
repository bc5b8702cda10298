# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from usedesk_email.inbound.batch import retry_failure


class EmailChannelFailure(Document):
	@frappe.whitelist()
	def retry(self) -> dict:
		self.check_permission("write")
		if self.status == "Retried":
			frappe.throw(_("This message was already stored in ticket {0}.").format(self.ticket))
		result = retry_failure(self.name)
		return {"outcome": result.outcome, "ticket": result.ticket}
