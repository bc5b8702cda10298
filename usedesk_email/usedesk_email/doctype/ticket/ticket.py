# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

from frappe.model.document import Document
from frappe.utils import now_datetime

from usedesk_email.mail.message import Kind
from usedesk_email.participants import split_lines

REOPENED_BY_CLIENT = ("Replied", "Resolved")


class Ticket(Document):
	def before_insert(self):
		self.set_opened_at()

	def validate(self):
		self.normalise_participants()
		self.track_resolution()

	def set_opened_at(self):
		if not self.opened_at:
			self.opened_at = now_datetime()

	def normalise_participants(self):
		if self.client_email:
			self.client_email = self.client_email.strip().lower()
		self.cc_addresses = "\n".join(split_lines(self.cc_addresses))

	def track_resolution(self):
		if self.status == "Resolved" and not self.resolved_at:
			self.resolved_at = now_datetime()
		elif self.status in ("Open", "Replied"):
			self.resolved_at = None

	def on_communication_update(self, communication):
		"""Frappe calls this instead of its own status rules, which would let auto-replies reopen tickets."""
		values = communication_update(self.status, self.first_response_at, communication)
		if values:
			self.db_set(values, update_modified=False)
			self.notify_update()


def communication_update(status: str, first_response_at, communication) -> dict:
	"""What a new message changes on its ticket: last message time, status, first response."""
	if communication.communication_type != "Communication":
		return {}
	values = {"last_message_at": communication.communication_date or now_datetime()}
	if communication.sent_or_received == "Received":
		if (
			communication.flags.usedesk_kind not in (Kind.AUTO_REPLY, Kind.BOUNCE)
			and status in REOPENED_BY_CLIENT
		):
			values.update(status="Open", resolved_at=None)
	elif communication.sent_or_received == "Sent" and not communication.flags.usedesk_send:
		values["status"] = "Replied"  # our own replies: once a letter is out (outgoing.mark_replied)
		if not first_response_at:
			values["first_response_at"] = communication.communication_date or now_datetime()
	return values
