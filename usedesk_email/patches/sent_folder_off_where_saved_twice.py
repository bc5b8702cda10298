"""The new "Save Replies to the Sent Folder" option arrives on (its default) for every
existing channel. Turn it off where it does nothing (Internal connections) or where the
provider already files what its SMTP server sent (Gmail, Office 365): a second copy there
would appear twice in the mailbox."""

import frappe

from usedesk_email.outbound.sent_folder import default_off


def execute() -> None:
	for channel in frappe.get_all(
		"Email Channel", fields=["name", "incoming_type", "outgoing_type", "smtp_host", "save_to_sent"]
	):
		if channel.save_to_sent and default_off(channel):
			frappe.db.set_value("Email Channel", channel.name, "save_to_sent", 0, update_modified=False)
