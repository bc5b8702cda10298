"""Internal outgoing: the site's own Email Queue sends the letters we composed, unchanged."""

import frappe
from frappe import _
from frappe.email.doctype.email_account.email_account import EmailAccount

from usedesk_email.outbound.transports.base import FAILED, HANDED_OVER, LetterOutcome


class EmailQueueTransport:
	marks_sending = False  # the queue rows and the letters' statuses commit together

	def send(self, channel, comm, rows: list) -> list[LetterOutcome]:
		account = EmailAccount.find_outgoing(match_by_email=channel.from_email, match_by_doctype="Ticket")
		if not account:
			error = _(
				"The site has no outgoing Email Account; set one up (Email Account, Default Outgoing) and use Retry Sending."
			)
			return [LetterOutcome(row.name, FAILED, error) for row in rows]
		return [
			LetterOutcome(row.name, HANDED_OVER, email_queue=self.queue(channel, comm, row, account.name))
			for row in rows
		]

	def queue(self, channel, comm, row, account: str) -> str:
		return (
			frappe.get_doc(
				{
					"doctype": "Email Queue",
					"sender": channel.from_email,
					"message": row.raw,
					"message_id": row.message_id,
					"communication": comm.name,
					"reference_doctype": "Ticket",
					"reference_name": comm.reference_name,
					"email_account": account,
					"status": "Not Sent",
					"priority": 1,
					"add_unsubscribe_link": 0,  # a reply to a client, not a newsletter
					"recipients": [{"recipient": row.recipient, "status": "Not Sent"}],
				}
			)
			.insert(ignore_permissions=True)
			.name
		)
