# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import tempfile
from pathlib import Path

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.desk import dovecot_channel, outgoing_account
from usedesk_email.testing.dovecot import DovecotServer
from usedesk_email.testing.ports import free_port
from usedesk_email.testing.smtp_server import SmtpTestServer


class TestConnectionCheck(FrappeTestCase):
	"""Test Connection logs in to the real IMAP and SMTP servers and reports each clearly."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.tmp = tempfile.TemporaryDirectory()
		cls.certs = make_certificates(Path(cls.tmp.name))
		cls.imap = DovecotServer().start()
		cls.box = cls.imap.new_mailbox("check")
		cls.smtp = SmtpTestServer(certificates=cls.certs, users={cls.box.user: cls.box.password}).__enter__()

	@classmethod
	def tearDownClass(cls):
		cls.smtp.__exit__(None, None, None)
		cls.imap.stop()
		cls.tmp.cleanup()
		super().tearDownClass()

	def channel(self, name: str, **values):
		bundle = self.imap.ca_file.read_text() + Path(self.certs.ca_file).read_text()
		smtp = {
			"outgoing_type": "External",
			"smtp_host": self.smtp.host,
			"smtp_port": self.smtp.port,
			"smtp_encryption": "STARTTLS",
			"ca_certificate": bundle,
		}
		return dovecot_channel(self.imap, self.box, name, **{**smtp, **values})

	def test_both_servers_log_in(self):
		self.imap.deliver(self.box.user, b"From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n")
		result = self.channel("check ok").test_connection()
		self.assertTrue(result["ok"], result)
		self.assertEqual(len(result["checks"]), 2)
		self.assertIn("1 unread", result["checks"][0]["message"])
		self.assertIn("STARTTLS", result["checks"][1]["message"])
		self.assertEqual(self.imap.flags(self.box.user)[1], set(), "the check reads nothing")

	def test_wrong_password_is_reported_without_the_password(self):
		result = self.channel("check bad pass", imap_password="Wrong-Pass-4242").test_connection()
		self.assertFalse(result["ok"])
		self.assertEqual([c["ok"] for c in result["checks"]], [False, False])
		self.assertNotIn("Wrong-Pass-4242", frappe.as_json(result))

	def test_unreachable_host_and_untrusted_certificate_are_clear_messages(self):
		result = self.channel("check unreachable", imap_port=1, ca_certificate="").test_connection()
		imap, smtp = result["checks"]
		self.assertFalse(imap["ok"])
		self.assertIn("127.0.0.1:1", imap["message"])
		self.assertFalse(smtp["ok"])
		self.assertIn("not trusted", smtp["message"])

	def test_agents_may_not_test_connections(self):
		name = self.channel("check agent").name
		frappe.set_user("Guest")
		try:
			with self.assertRaises(frappe.PermissionError):
				frappe.get_doc("Email Channel", name).test_connection()
		finally:
			frappe.set_user("Administrator")

	def test_poll_now_queues_one_job_per_channel(self):
		channel = self.channel("check poll now")
		first = channel.poll_now()
		second = channel.poll_now()
		self.assertEqual(first, second)
		self.assertTrue(first["job_id"].endswith(channel.name))

	def test_internal_outgoing_checks_the_sites_email_account(self):
		sending = frappe.get_all("Email Account", filters={"enable_outgoing": 1}, pluck="name")
		frappe.db.set_value("Email Account", {"name": ("in", sending or ["-"])}, "enable_outgoing", 0)
		frappe.local.outgoing_email_account = {}  # Frappe's per-process cache of the lookup
		account = None
		try:
			channel = self.channel("check internal", outgoing_type="Internal")
			result = channel.test_connection()
			self.assertFalse(result["ok"])
			self.assertIn("no outgoing Email Account", result["checks"][-1]["message"])

			with SmtpTestServer(security="none") as site_smtp:
				account = outgoing_account(site_smtp)
				frappe.local.outgoing_email_account = {}
				result = channel.test_connection()
				self.assertTrue(result["ok"], result)
				self.assertIn(f"{site_smtp.host}:{site_smtp.port}", result["checks"][-1]["message"])

			frappe.db.set_value("Email Account", account, "smtp_port", free_port())
			frappe.local.outgoing_email_account = {}
			frappe.local.message_log = []
			result = channel.test_connection()
			self.assertFalse(result["ok"])
			self.assertIn("could not connect", result["checks"][-1]["message"])
			self.assertFalse(frappe.local.message_log, "reported in the row, not in a second dialog")
		finally:
			if account:
				frappe.delete_doc("Email Account", account, force=True)
			frappe.db.set_value("Email Account", {"name": ("in", sending or ["-"])}, "enable_outgoing", 1)
			frappe.local.outgoing_email_account = {}
			frappe.db.commit()
