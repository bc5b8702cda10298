# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import json
import os
import re
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.inbound.batch import IngestBatch, ingest_raw
from usedesk_email.inbound.mta import TRY_LATER
from usedesk_email.inbound.postfix import site_setup
from usedesk_email.inbound.postfix_config import config_block, main_cf, master_cf
from usedesk_email.testing.desk import mail, make_channel, messages_of, run_bench, set_settings
from usedesk_email.testing.postfix import PostfixServer
from usedesk_email.testing.smtp_server import SmtpTestServer

DOMAIN = "inbound.postfix-test.example"
MB = 1024 * 1024


class TestPostfix(FrappeTestCase):
	"""Internal channels through a real Postfix on 127.0.0.1 with the README's block, rendered
	for this bench and site: Postfix's pipe runs `usedesk-email deliver` as the bench's owner.

	Run as root, Postfix starts as it is; run as the bench's owner, it starts in a user
	namespace of its own (usedesk_email/testing/postfix.py).
	"""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		set_settings(inbound_domain=DOMAIN, max_message_size_mb=25)
		cls.channel = make_channel(
			f"postfix {frappe.generate_hash(length=6)}",
			incoming_type="Internal",
			main_email="support@shop.example",
			from_email="support@shop.example",
		)
		frappe.db.commit()  # the recipient table is written after this commit
		cls.address = cls.channel.internal_address
		cls.run_id = frappe.generate_hash(length=8)
		cls.setup = site_setup()
		environment = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
		cls.bounces = SmtpTestServer(security="none").start()
		cls.postfix = PostfixServer(
			main_cf(cls.setup),
			master_cf(cls.setup),
			outbound=(cls.bounces.host, cls.bounces.port),
			environment=environment,
		)
		try:
			cls.postfix.start()
		except BaseException:
			cls.bounces.stop()
			raise

	@classmethod
	def tearDownClass(cls):
		cls.postfix.stop()
		cls.bounces.stop()
		super().tearDownClass()

	def setUp(self):
		set_settings(inbound_domain=DOMAIN, max_message_size_mb=25)

	# -- helpers ------------------------------------------------------------

	def mid(self, label: str) -> str:
		"""A Message-ID of this run: the site keeps the messages of earlier runs."""
		return f"{label}-{self.run_id}@client.example"

	def send(self, raw: bytes, rcpt: str | None = None) -> str:
		"""One SMTP transaction without the SIZE parameter (so a size refusal comes at DATA);
		returns the queue id."""
		with smtplib.SMTP(self.postfix.host, self.postfix.port, timeout=120) as smtp:
			smtp.ehlo("client.example.org")
			smtp.mail("client@example.org")
			code, reply = smtp.rcpt(rcpt or self.address)
			if code != 250:
				raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
			code, reply = smtp.data(raw)
			if code != 250:
				raise smtplib.SMTPDataError(code, reply)
		return re.search(rb"queued as (\w+)", reply).group(1).decode()

	def outcome(self, queue_id: str, rcpt: str | None = None) -> str:
		"""Postfix's log line for the pipe's delivery attempt of that message."""
		line = self.postfix.wait_for_log(
			rf"{queue_id}: to=<{re.escape(rcpt or self.address)}>, relay=usedesk.*", timeout=180
		).group(0)
		frappe.db.commit()  # a fresh snapshot: the pipe wrote from another process
		return line

	# -- tests ------------------------------------------------------------

	def test_the_set_up_is_the_readme_block_for_this_bench(self):
		self.assertIn(
			f"argv={self.setup.bench}/env/bin/python -m frappe.utils.bench_helper", master_cf(self.setup)
		)
		self.assertIn(f"directory={self.setup.bench}/sites", master_cf(self.setup))
		printed = run_bench(["usedesk-email", "postfix-config"])
		self.assertEqual(printed.returncode, 0, printed.stderr)
		self.assertEqual(printed.stdout.decode(), config_block(self.setup))

	def test_delivered_to_a_ticket(self):
		raw = mail("Kettle broken", message_id=self.mid("pf-ticket"), to="support@shop.example")
		line = self.outcome(self.send(raw))
		self.assertIn("status=sent", line)
		(message,) = [m for m in messages_of(self.channel.name) if m.message_id == self.mid("pf-ticket")]
		ticket = frappe.get_doc("Ticket", message.reference_name)
		self.assertEqual((ticket.subject, ticket.client_email), ("Kettle broken", "client@example.org"))

	def test_russian_subject_with_an_attachment(self):
		attachment = os.urandom(40_000)
		message = EmailMessage()
		message["From"] = "Иван Петров <ivan@example.org>"
		message["To"] = "support@shop.example"
		message["Subject"] = "Не работает чайник — заказ №42"
		message["Message-ID"] = make_msgid(domain="client.example")
		message.set_content("Здравствуйте! Чайник не включается.")
		message.add_attachment(attachment, maintype="application", subtype="pdf", filename="счёт.pdf")
		self.assertIn("status=sent", self.outcome(self.send(message.as_bytes())))
		(stored,) = [m for m in messages_of(self.channel.name) if m.message_id == message["Message-ID"][1:-1]]
		self.assertEqual(
			frappe.db.get_value("Ticket", stored.reference_name, "subject"), "Не работает чайник — заказ №42"
		)
		(file,) = frappe.get_all(
			"File",
			filters={"attached_to_doctype": "Communication", "attached_to_name": stored.name},
			fields=["name", "file_name"],
		)
		self.assertTrue(file.file_name.startswith("счёт") and file.file_name.endswith(".pdf"), file.file_name)
		self.assertEqual(frappe.get_doc("File", file.name).get_content(), attachment)

	def test_the_same_message_twice_is_stored_once_and_takes_no_ticket_number(self):
		raw = mail("Twice", message_id=self.mid("pf-twice"))
		first, second = self.send(raw), self.send(raw)
		self.assertIn("status=sent", self.outcome(first))
		self.assertIn("status=sent", self.outcome(second))
		stored = [m for m in messages_of(self.channel.name) if m.message_id == self.mid("pf-twice")]
		self.assertEqual(len(stored), 1)
		after = mail("After the duplicate", message_id=self.mid("pf-after"), sender="other@example.org")
		self.assertIn("status=sent", self.outcome(self.send(after)))
		(next_one,) = [m for m in messages_of(self.channel.name) if m.message_id == self.mid("pf-after")]
		self.assertEqual(int(next_one.reference_name), int(stored[0].reference_name) + 1)

	def test_unknown_recipient_is_refused_at_rcpt_and_nothing_bounces(self):
		bounces = len(self.bounces.deliveries)
		for rcpt in (f"in-nobody@{DOMAIN}", f"NOBODY@{DOMAIN}"):
			with self.assertRaises(smtplib.SMTPRecipientsRefused) as refused:
				# The To: header names the channel: only the envelope recipient counts.
				self.send(mail("To nobody", message_id=self.mid("pf-nobody"), to=self.address), rcpt)
			((code, reply),) = refused.exception.recipients.values()
			self.assertEqual(code, 550, reply)
			self.assertIn(b"5.1.1", reply)
		# A channel made now is accepted at once; a disabled one is refused.
		fresh = make_channel(
			f"postfix new {frappe.generate_hash(length=6)}",
			incoming_type="Internal",
			main_email="new@shop.example",
		)
		frappe.db.commit()
		queue_id = self.send(mail("To the new one", message_id=self.mid("pf-new")), fresh.internal_address)
		self.assertIn("status=sent", self.outcome(queue_id, fresh.internal_address))
		fresh.enabled = 0
		fresh.save(ignore_permissions=True)
		frappe.db.commit()
		with self.assertRaises(smtplib.SMTPRecipientsRefused):
			self.send(mail("Disabled", message_id=self.mid("pf-disabled")), fresh.internal_address)
		self.assertEqual(len(self.bounces.deliveries), bounces)

	def test_a_twenty_megabyte_message_is_accepted(self):
		attachment = os.urandom(15 * MB)  # about 20 MB once base64-encoded
		message = EmailMessage()
		message["From"] = "client@example.org"
		message["To"] = "support@shop.example"
		message["Subject"] = "Big scan"
		message["Message-ID"] = f"<{self.mid('pf-20mb')}>"
		message.set_content("See the scan.")
		message.add_attachment(
			attachment, maintype="application", subtype="octet-stream", filename="scan.bin"
		)
		raw = message.as_bytes()
		self.assertGreater(len(raw), 20 * MB)
		self.assertIn("status=sent", self.outcome(self.send(raw)))
		(stored,) = [m for m in messages_of(self.channel.name) if m.message_id == self.mid("pf-20mb")]
		(size,) = frappe.get_all(
			"File",
			filters={"attached_to_name": stored.name, "file_name": ("like", "scan%")},
			pluck="file_size",
		)
		self.assertEqual(size, len(attachment))

	def test_a_message_over_the_cap_is_refused_at_data(self):
		raw = mail("Too big", message_id=self.mid("pf-huge"), body="z" * (26 * MB))
		with self.assertRaises(smtplib.SMTPDataError) as refused:
			self.send(raw)
		self.assertEqual(refused.exception.smtp_code, 552)
		self.assertIn(b"5.3.4", refused.exception.smtp_error)

	def test_a_refusal_bounces_with_the_real_size_and_nothing_internal(self):
		"""The site's cap lowered below Postfix's limit: the pipe refuses, Postfix bounces."""
		set_settings(max_message_size_mb=1)
		raw = mail("Over the new cap", message_id=self.mid("pf-cap"), body="q" * (2 * MB))
		line = self.outcome(self.send(raw))
		self.assertIn("dsn=5.6.0, status=bounced", line)
		bounce = self.wait_for_bounce(self.mid("pf-cap").encode())
		self.assertIn(
			b"The message is 2.0 MB; this site accepts at most 1.0 MB", re.sub(rb"\s+", b" ", bounce)
		)
		for internal in (self.setup.bench.encode(), frappe.local.site.encode(), frappe.conf.db_name.encode()):
			self.assertNotIn(internal, bounce.split(b"Content-Description: Undelivered Message")[0])

	def test_database_unreachable_defers_and_the_message_arrives_after(self):
		path = os.path.join(frappe.get_site_path(), "site_config.json")
		with open(path, "rb") as f:
			original = f.read()
		config = {**json.loads(original), "db_password": "wrong-" + frappe.generate_hash(length=8)}
		raw = mail("While the database is away", message_id=self.mid("pf-dbdown"))
		try:  # rewritten in place: the file keeps its owner whoever runs the tests
			with open(path, "w") as f:
				json.dump(config, f, indent=1)
			line = self.outcome(self.send(raw))
		finally:
			with open(path, "wb") as f:
				f.write(original)
		self.assertIn("dsn=4.3.0, status=deferred", line)
		self.assertIn(TRY_LATER, line)
		for internal in (frappe.conf.db_name, config["db_password"], "Access denied", frappe.local.site):
			self.assertNotIn(internal, line)
		self.assertFalse([m for m in messages_of(self.channel.name) if m.message_id == self.mid("pf-dbdown")])
		mark = len(self.postfix.log_text())
		self.postfix.flush()
		self.postfix.wait_for_log(rf"to=<{re.escape(self.address)}>, relay=usedesk.*status=sent", 180, mark)
		frappe.db.commit()
		self.assertEqual(
			len([m for m in messages_of(self.channel.name) if m.message_id == self.mid("pf-dbdown")]), 1
		)

	def test_a_batch_written_again_reuses_the_ticket_numbers_it_took(self):
		"""A duplicate inside a batch rolls it back; the new ticket before it keeps its number."""
		first = ingest_raw(self.channel, mail("Batch first", "b1@example.org", self.mid("pf-b1")), "test")
		with IngestBatch(self.channel) as batch:
			batch.add(mail("Batch new", message_id=self.mid("pf-b2"), sender="b2@example.org"), "test")
			batch.add(mail("Batch first", "b1@example.org", self.mid("pf-b1")), "test")
			new, duplicate = batch.commit()
		self.assertTrue(duplicate.duplicate)
		self.assertEqual(int(new.ticket), int(first.ticket) + 1)
		later = ingest_raw(
			self.channel,
			mail("Batch later", message_id=self.mid("pf-b3"), sender="b3@example.org"),
			"test",
		)
		self.assertEqual(int(later.ticket), int(first.ticket) + 2)

	def wait_for_bounce(self, marker: bytes, timeout: float = 120) -> bytes:
		import time

		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			for delivery in self.bounces.deliveries:
				if marker in delivery.data:
					return delivery.data
			time.sleep(0.2)
		raise AssertionError(f"no bounce for {marker!r}:\n{self.postfix.tail()}")
