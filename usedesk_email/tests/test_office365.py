# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import frappe
import requests
from frappe.tests.utils import FrappeTestCase

from usedesk_email.api import provider_preset
from usedesk_email.inbound.poll import poll_channel
from usedesk_email.outbound.delivery import send_communication
from usedesk_email.outbound.replies import create_reply
from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.desk import (
	authorise,
	connected_app,
	mail,
	make_channel,
	messages_of,
	served_site,
	token_cache,
)
from usedesk_email.testing.dovecot import DovecotServer
from usedesk_email.testing.oauth2_server import OAuth2TestServer
from usedesk_email.testing.smtp_server import SmtpTestServer

MAILBOX = "support@o365.example"


class TestOffice365(FrappeTestCase):
	"""XOAUTH2 for real: Dovecot asks a token-introspection endpoint, Frappe refreshes at a token endpoint."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		# requests-oauthlib refuses plain-HTTP token endpoints; the test provider is on 127.0.0.1.
		os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
		cls.tmp = tempfile.TemporaryDirectory()
		cls.certs = make_certificates(Path(cls.tmp.name))
		cls.provider = OAuth2TestServer().start()
		cls.dovecot = DovecotServer(oauth2_introspection_url=cls.provider.introspection_url).start()
		cls.smtp = SmtpTestServer(certificates=cls.certs, tokens=cls.provider.accepts).start()
		cls.app = connected_app(cls.provider)

	@classmethod
	def tearDownClass(cls):
		cls.smtp.stop()
		cls.dovecot.stop()
		cls.provider.stop()
		cls.tmp.cleanup()
		os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
		super().tearDownClass()

	def setUp(self):
		self.user = f"o365-{frappe.generate_hash(length=6)}@o365.example"
		self.dovecot.add_user(self.user, frappe.generate_hash(length=12))
		self.access, self.refresh = self.provider.issue(self.user)
		self.channel = make_channel(
			f"office365 {self.user}",
			incoming_type="Office 365",
			outgoing_type="Office 365",
			imap_username=None,
			imap_password=None,
			imap_email=self.user,
			from_email=self.user,
			imap_host=self.dovecot.host,
			imap_port=self.dovecot.ssl_port,
			imap_encryption="SSL",
			smtp_host=self.smtp.host,
			smtp_port=self.smtp.port,
			smtp_encryption="STARTTLS",
			ca_certificate=self.dovecot.ca_file.read_text() + "\n" + self.certs.ca_file.read_text(),
			connected_app=self.app,
			connected_user="Administrator",
		)
		authorise(self.app, self.access, self.refresh, expires_in=3600)
		frappe.db.commit()

	def deliver(self, message_id: str):
		self.dovecot.deliver(self.user, mail("Help over OAuth2", message_id=message_id, to=self.user))

	def test_poll_and_reply_over_xoauth2(self):
		self.deliver("o1@client.example")
		outcome = poll_channel(self.channel.name)
		self.assertEqual((outcome["result"], outcome["stored"]), ("ok", 1), outcome)
		self.assertGreaterEqual(self.provider.introspections, 1, "Dovecot asked the provider")
		ticket = str(frappe.get_all("Ticket", filters={"channel": self.channel.name}, pluck="name")[0])

		answer = create_reply(ticket, "<p>Answered over XOAUTH2.</p>")
		frappe.db.commit()
		send_communication(answer["communication"])
		self.assertEqual(
			frappe.db.get_value("Communication", answer["communication"], "delivery_status"), "Sent"
		)
		self.assertEqual([d.rcpt_tos for d in self.smtp.deliveries[-1:]], [["client@example.org"]])
		self.assertFalse(
			frappe.get_doc("Email Channel", self.channel.name).get_password(
				"imap_password", raise_exception=False
			)
		)

	def test_a_reply_whose_token_the_smtp_server_refuses_is_sent_with_a_refreshed_one(self):
		self.deliver("o6@client.example")
		poll_channel(self.channel.name)
		ticket = str(frappe.get_all("Ticket", filters={"channel": self.channel.name}, pluck="name")[0])
		self.provider.expire(token_cache(self.app).get_password("access_token"))
		before = self.provider.token_requests
		answer = create_reply(ticket, "<p>Sent after a refresh.</p>")
		frappe.db.commit()
		send_communication(answer["communication"])
		self.assertEqual(
			frappe.db.get_value("Communication", answer["communication"], "delivery_status"), "Sent"
		)
		self.assertEqual(self.provider.token_requests, before + 1)

	def test_an_expired_token_is_refreshed_before_use(self):
		authorise(self.app, self.access, self.refresh, expires_in=60)  # inside the refresh margin
		before = self.provider.token_requests
		self.deliver("o2@client.example")
		outcome = poll_channel(self.channel.name)
		self.assertEqual((outcome["result"], outcome["stored"]), ("ok", 1), outcome)
		self.assertEqual(self.provider.token_requests, before + 1)
		self.assertNotEqual(token_cache(self.app).get_password("access_token"), self.access)

	def test_a_token_the_server_refuses_is_refreshed_and_the_login_retried_once(self):
		self.provider.expire(self.access)  # still valid by the cache's clock
		before = self.provider.token_requests
		self.deliver("o3@client.example")
		outcome = poll_channel(self.channel.name)
		self.assertEqual((outcome["result"], outcome["stored"]), ("ok", 1), outcome)
		self.assertEqual(self.provider.token_requests, before + 1)

	def test_revoked_consent_shows_on_the_channel_and_backs_off(self):
		self.provider.revoke(self.refresh)
		self.deliver("o4@client.example")
		for _attempt in range(3):
			outcome = poll_channel(self.channel.name)
			self.assertEqual(outcome["result"], "error", outcome)
		channel = frappe.get_doc("Email Channel", self.channel.name)
		self.assertIn("Authorize again", channel.last_error)
		self.assertEqual(channel.consecutive_failures, 3)
		self.assertTrue(channel.next_poll_after, "backs off instead of retrying every run")
		self.assertEqual(len(messages_of(self.channel.name)), 0)
		self.assertNotIn(self.refresh, channel.last_error)

	def test_the_admin_authorises_once_from_the_channel(self):
		"""Authorize, the provider's redirect to Frappe's callback, then a poll with the new grant."""
		frappe.db.delete("Token Cache", {"connected_app": self.app})
		frappe.db.commit()
		url = frappe.get_doc("Email Channel", self.channel.name).authorize()
		query = parse_qs(urlparse(url).query)
		self.assertEqual(query["client_id"], [self.provider.client_id])
		redirect_uri = query["redirect_uri"][0]
		code = self.provider.register_code(self.user, redirect_uri=redirect_uri)
		frappe.db.commit()
		with served_site() as base:
			session = requests.Session()
			login = session.post(
				f"{base}/api/method/login", data={"usr": "Administrator", "pwd": "admin"}, timeout=60
			)
			self.assertEqual(login.status_code, 200, login.text)
			callback = urlparse(redirect_uri)
			answer = session.get(
				f"{base}{callback.path}",
				params={"code": code, "state": query["state"][0]},
				allow_redirects=False,
				timeout=60,
			)
			self.assertIn(answer.status_code, (301, 302, 303), answer.text[:500])
		frappe.db.commit()
		self.assertTrue(token_cache(self.app).get_password("refresh_token", raise_exception=False))
		self.deliver("o5@client.example")
		outcome = poll_channel(self.channel.name)
		self.assertEqual((outcome["result"], outcome["stored"]), ("ok", 1), outcome)

	def test_not_yet_authorised_and_settings(self):
		frappe.db.delete("Token Cache", {"connected_app": self.app})
		frappe.db.commit()
		outcome = poll_channel(self.channel.name)
		self.assertEqual(outcome["result"], "error")
		self.assertIn("not authorised", outcome["error"])
		with self.assertRaises(frappe.MandatoryError):
			make_channel(
				"o365 without app", incoming_type="Office 365", imap_username=None, imap_password=None
			)
		defaults = make_channel(
			"o365 defaults",
			incoming_type="Office 365",
			outgoing_type="Office 365",
			imap_username=None,
			imap_password=None,
			imap_host=None,
			imap_port=None,
			connected_app=self.app,
		)
		self.assertEqual(
			(defaults.imap_host, defaults.imap_port, defaults.smtp_host, defaults.smtp_port),
			("outlook.office365.com", 993, "smtp.office365.com", 587),
		)
		live = provider_preset(office365=True)  # what the form fills in before saving
		self.assertEqual((live["imap_host"], live["smtp_port"]), ("outlook.office365.com", 587))
