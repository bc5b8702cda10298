# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Sent replies saved to the mailbox's Sent folder, against the real Dovecot and SMTP servers."""

from email import policy
from email.parser import BytesParser

import frappe

from usedesk_email.outbound.delivery import send_communication
from usedesk_email.outbound.sent_folder import due
from usedesk_email.testing.desk import outgoing_account
from usedesk_email.testing.ports import free_port
from usedesk_email.testing.replies import ReplyFixture
from usedesk_email.testing.smtp_server import SmtpTestServer
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

SEEN = "\\Seen"


class TestSentFolder(ReplyFixture):
	def sent(self, folder: str = "Sent") -> list:
		return [
			BytesParser(policy=policy.default).parsebytes(raw)
			for raw in self.dovecot.messages(self.box.user, folder)
		]

	def client_row(self, communication: str):
		return frappe.db.get_value(
			CHANNEL_MESSAGE,
			{"communication": communication, "recipient": "client@example.org"},
			["message_id", "appended_to_sent", "sent_retry_at"],
			as_dict=True,
		)

	def channel_value(self, field: str):
		return frappe.db.get_value("Email Channel", self.channel.name, field)

	def test_the_clients_letter_appears_once_in_sent_read(self):
		self.dovecot.create_folder(self.box.user, "Sent")
		answer = self.reply_as(self.agent, "<p>We will send a new one.</p>")

		sent = self.sent()
		self.assertEqual(len(sent), 1, "the client's letter only: not the CC's, not the BCC copy")
		row = self.client_row(answer["communication"])
		self.assertEqual(sent[0]["Message-ID"], f"<{row.message_id}>")
		self.assertEqual(sent[0]["To"], "client@example.org")
		self.assertEqual(list(self.dovecot.flags(self.box.user, "Sent").values()), [{SEEN}])
		self.assertTrue(
			frappe.db.get_value(CHANNEL_MESSAGE, {"message_id": row.message_id}, "appended_to_sent")
		)
		self.assertEqual(len(self.smtp.deliveries), 3, "the sending itself is unchanged")
		self.assertFalse(self.channel_value("sent_error"))

	def test_a_retried_job_does_not_append_twice(self):
		self.dovecot.create_folder(self.box.user, "Sent")
		self.smtp.refuse["boss@example.org"] = "451 4.3.0 try later"
		answer = self.reply_as(self.agent, "<p>Answer.</p>")
		self.assertEqual(self.rows(answer["communication"])["boss@example.org"].status, "Temporary failure")
		self.assertEqual(len(self.sent()), 1, "appended once the client's letter is out")

		del self.smtp.refuse["boss@example.org"]
		frappe.db.set_value(
			CHANNEL_MESSAGE,
			{"communication": answer["communication"], "recipient": "boss@example.org"},
			"next_attempt_at",
			None,
		)
		frappe.db.commit()
		send_communication(answer["communication"])  # the retry sends the CC's letter
		send_communication(answer["communication"])  # and a job run once more

		self.assertEqual(self.rows(answer["communication"])["boss@example.org"].status, "Sent")
		self.assertEqual(len(self.sent()), 1)

	def test_without_a_special_use_sent_folder_the_admins_folder_is_used(self):
		self.dovecot.create_folder(self.box.user, "Gesendet")
		self.assertEqual(self.channel.reload().sent_folders()["sent"], None)
		self.assertIn("Gesendet", self.channel.sent_folders()["folders"])
		frappe.db.set_value("Email Channel", self.channel.name, "sent_folder", "Gesendet")
		frappe.db.commit()

		self.reply_as(self.agent, "<p>Answer.</p>")

		self.assertEqual([m["To"] for m in self.sent("Gesendet")], ["client@example.org"])
		self.assertEqual(list(self.dovecot.flags(self.box.user, "Gesendet").values()), [{SEEN}])
		check = self.channel.reload().test_connection()["checks"][0]
		self.assertIn("Gesendet", check["message"])

	def test_an_append_failure_shows_on_the_channel_and_not_on_the_ticket(self):
		frappe.db.set_value("Email Channel", self.channel.name, "sent_folder", "No-Such-Folder")
		frappe.db.commit()

		answer = self.reply_as(self.agent, "<p>Answer.</p>")

		self.assertIn("No-Such-Folder", self.channel_value("sent_error"))
		self.assertIn("not tried again", self.channel_value("sent_error"))
		self.assertFalse(frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))
		self.assertEqual(
			frappe.db.get_value("Communication", answer["communication"], "delivery_status"), "Sent"
		)
		self.assertEqual(
			{r.status for r in self.rows(answer["communication"]).values()}, {"Sent"}, "letters untouched"
		)
		self.assertNotIn(answer["communication"], due(), "a refused folder is not retried")

		self.dovecot.create_folder(self.box.user, "Sent")
		self.reply_as(self.agent, "<p>Another answer.</p>")
		self.assertEqual(len(self.sent()), 1)
		self.assertFalse(self.channel_value("sent_error"), "the next success clears it")

	def test_a_connection_failure_is_retried_later(self):
		self.dovecot.create_folder(self.box.user, "Sent")
		port = self.channel_value("imap_port")
		frappe.db.set_value("Email Channel", self.channel.name, "imap_port", free_port())
		frappe.db.commit()
		answer = self.reply_as(self.agent, "<p>Answer.</p>")
		self.assertIn("will try again", self.channel_value("sent_error"))
		self.assertFalse(frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))
		row = self.client_row(answer["communication"])
		self.assertFalse(row.appended_to_sent)
		self.assertNotIn(answer["communication"], due(), "not before its delay")

		frappe.db.set_value(
			CHANNEL_MESSAGE, {"message_id": row.message_id}, "sent_retry_at", "2000-01-01 00:00:00"
		)
		frappe.db.set_value("Email Channel", self.channel.name, "imap_port", port)
		frappe.db.commit()
		self.assertIn(answer["communication"], due())
		send_communication(answer["communication"])  # what the scheduler's retry_due enqueues
		self.assertEqual(len(self.sent()), 1)
		self.assertEqual(len(self.smtp.deliveries), 3, "no letter sent again")
		self.assertNotIn(answer["communication"], due())

	def test_internal_outgoing_appends_nothing(self):
		self.dovecot.create_folder(self.box.user, "Sent")
		with SmtpTestServer(security="none") as site_smtp:
			account = outgoing_account(site_smtp)
			frappe.db.set_value("Email Channel", self.channel.name, "outgoing_type", "Internal")
			frappe.db.commit()
			try:
				self.reply_as(self.plain_agent, "<p>Via the site's outgoing mail.</p>")
			finally:
				frappe.delete_doc("Email Account", account, force=True)
				frappe.db.commit()
		self.assertEqual(self.sent(), [])
		self.assertFalse(self.channel_value("sent_error"))

	def test_the_option_starts_off_where_it_would_double_or_do_nothing(self):
		gmail = frappe.get_doc(
			{
				"doctype": "Email Channel",
				"channel_name": f"gmail {frappe.generate_hash(length=6)}",
				"incoming_type": "External",
				"outgoing_type": "External",
				"imap_username": "shop@gmail.com",
				"imap_password": "x-secret-1",
				"from_email": "shop@gmail.com",
			}
		).insert(ignore_permissions=True)
		self.assertEqual(gmail.smtp_host, "smtp.gmail.com")
		self.assertFalse(gmail.save_to_sent)
		self.assertTrue(self.channel.reload().save_to_sent, "on by default for another server")
