"""The fixture of the Frappe tests that reply: a channel sending through a real SMTP server,
answers polled from a real Dovecot."""

import tempfile
from email import policy
from email.parser import BytesParser
from pathlib import Path

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.outbound.delivery import send_communication
from usedesk_email.outbound.replies import create_reply
from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.desk import agent_user, dovecot_channel, mail
from usedesk_email.testing.dovecot import DovecotServer
from usedesk_email.testing.smtp_server import SmtpTestServer

CHANNEL_MESSAGE = "Email Channel Message"
SMTP_PASSWORD = "smtp-Secret-4410"
PERSONAL = "<p>Anna Smith, second line support</p>"
COMMON = "<p>The Shop support team</p>"


class ReplyFixture(FrappeTestCase):
	"""A channel sending through a real SMTP server, answers polled from a real Dovecot."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.tmp = tempfile.TemporaryDirectory()
		cls.certs = make_certificates(Path(cls.tmp.name))
		cls.smtp = SmtpTestServer(certificates=cls.certs, users={"agent": SMTP_PASSWORD}).start()
		cls.dovecot = DovecotServer().start()
		cls.agent = agent_user("reply-agent@example.com", signature=PERSONAL)
		cls.plain_agent = agent_user("plain-agent@example.com", signature="")

	@classmethod
	def tearDownClass(cls):
		frappe.set_user("Administrator")
		cls.smtp.stop()
		cls.dovecot.stop()
		cls.tmp.cleanup()
		super().tearDownClass()

	def setUp(self):
		frappe.set_user("Administrator")
		self.smtp.deliveries.clear()
		self.smtp.refuse.clear()
		self.smtp.drop_after_data.clear()
		self.box = self.dovecot.new_mailbox("reply")
		self.channel = dovecot_channel(
			self.dovecot,
			self.box,
			f"replies {self.box.user}",
			imap_email=f"{self.box.user}@example.com",
			from_email="help@shop.example",
			from_name="Shop Support",
			bcc_email="archive@shop.example",
			outgoing_type="External",
			smtp_host=self.smtp.host,
			smtp_port=self.smtp.port,
			smtp_encryption="STARTTLS",
			smtp_use_imap_credentials=0,
			smtp_username="agent",
			smtp_password=SMTP_PASSWORD,
			ca_certificate=self.dovecot.ca_file.read_text() + "\n" + self.certs.ca_file.read_text(),
			use_common_signature=1,
			signature=COMMON,
			display_quote=1,
			forward_as_new_ticket=1,
		)
		self.ticket = self.incoming("Kettle broken", "k1@client.example", cc="boss@example.org")
		frappe.db.commit()

	def incoming(self, subject: str, message_id: str, **kwargs) -> str:
		raw = mail(
			subject, message_id=message_id, to="help@shop.example", body="My kettle is broken.", **kwargs
		)
		return str(ingest_raw(self.channel, raw, "test").ticket)

	def reply_as(self, user: str, content: str, ticket: str | None = None, **kwargs) -> dict:
		frappe.set_user(user)
		try:
			answer = create_reply(ticket or self.ticket, content, **kwargs)
		finally:
			frappe.set_user("Administrator")
		frappe.db.commit()
		send_communication(answer["communication"])
		return answer

	def letters(self) -> dict:
		"""Delivered letters by envelope recipient, parsed."""
		return {
			d.rcpt_tos[0]: BytesParser(policy=policy.default).parsebytes(d.data) for d in self.smtp.deliveries
		}

	def own_part(self) -> str:
		"""The client's letter's HTML above the quoted history: the agent's message and signature."""
		html = self.letters()["client@example.org"].get_body(("html",)).get_content()
		return html.split("usedesk-quote", 1)[0]

	def rows(self, communication: str) -> dict:
		return {
			r.recipient: r
			for r in frappe.get_all(
				CHANNEL_MESSAGE,
				filters={"communication": communication, "direction": "Outgoing"},
				fields=["recipient", "status", "attempts", "error", "bcc", "next_attempt_at", "message_id"],
			)
		}
