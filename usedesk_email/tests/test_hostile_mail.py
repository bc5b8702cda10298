# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Mail as an attacker sends it: what reaches the desk carries no markup, strangers cannot
join or pre-empt a conversation, big or odd mail is stored (cut, its original kept)."""

import base64
import os
import re

import frappe
import requests
from frappe.tests.utils import FrappeTestCase

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.inbound.bodies import ORIGINAL_NAME
from usedesk_email.inbound.poll import poll_channel
from usedesk_email.participants import MAX_PARTICIPANTS
from usedesk_email.testing.desk import (
	SECRET,
	dovecot_channel,
	mail,
	make_channel,
	record_outgoing,
	run_bench,
	served_site,
	set_settings,
)
from usedesk_email.testing.dovecot import DovecotServer
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

EML = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "eml")
# Header values that reach the desk: tags, event handlers, encoded words, broken tags, SVG.
PAYLOADS = (
	"<img src=x onerror=alert(1)>",
	"<script>alert(document.cookie)</script>",
	"<svg/onload=alert(1)>",
	'"><img src=/api/method/logout>',
	"<a href=javascript:alert(1)>click</a>",
	"<iframe src=//evil.example>",
	"<img src=x onerror=alert(1)",  # never closed
	"<<script>alert(1)//<</script>",
	"<details open ontoggle=alert(1)>",
)


def file_bytes(file_url: str) -> bytes:
	content = frappe.get_doc("File", {"file_url": file_url}).get_content()
	return content.encode() if isinstance(content, str) else content


def encoded(text: str) -> str:
	return f"=?utf-8?B?{base64.b64encode(text.encode()).decode()}?="


def multipart(subject: str, sender: str, message_id: str, parts: list[tuple[str, str, bytes]]) -> bytes:
	"""A multipart/mixed message; parts are (content type, file name or "", payload)."""
	head = (
		f"From: Client <{sender}>\r\nTo: help@example.com\r\nSubject: {subject}\r\n"
		f"Message-ID: <{message_id}>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
		'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
	).encode()
	body = b""
	for ctype, filename, payload in parts:
		body += f"--b1\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n".encode()
		if filename:
			body += f'Content-Disposition: attachment; filename="{filename}"\r\n'.encode()
		body += b"\r\n" + base64.encodebytes(payload) + b"\r\n"
	return head + body + b"--b1--\r\n"


class TestHostileMail(FrappeTestCase):
	def setUp(self):
		self.channel = make_channel(f"hostile {frappe.generate_hash(length=6)}")

	def ingest(self, raw: bytes):
		result = ingest_raw(self.channel, raw, "test")
		self.assertNotEqual(result.outcome, "failed", result)
		return result

	def stored(self, result) -> tuple:
		ticket = frappe.get_doc("Ticket", result.ticket)
		comm = frappe.get_doc("Communication", result.communication)
		return ticket, comm

	def assert_no_markup(self, *values: str) -> None:
		for value in values:
			self.assertNotIn("<", value or "")
			self.assertNotIn(">", value or "")

	def test_header_values_reach_the_desk_without_markup(self):
		for i, payload in enumerate(PAYLOADS):
			quoted = '"Eve ' + payload.replace("\\", "\\\\").replace('"', '\\"') + '"'
			for shape, subject, name in (
				("quoted", f"Hi {payload}", quoted),
				("encoded", encoded(f"Hi {payload}"), encoded(f"Eve {payload}")),
				("bare", f"Hi {payload}", f"Eve {payload}"),  # broken syntax: the name is lost
			):
				with self.subTest(payload=payload, shape=shape):
					raw = mail(subject, sender=f"eve{i}{shape}@evil.example", message_id=f"x{i}{shape}@e")
					raw = raw.replace(b"From: Client <", f"From: {name} <".encode())
					raw = raw.replace(
						b"To: help@example.com", f"To: help@example.com, {name} <cc{i}@e.example>".encode()
					)
					ticket, comm = self.stored(self.ingest(raw))
					self.assert_no_markup(
						ticket.subject, ticket.client_name, comm.subject, comm.sender_full_name, comm.cc or ""
					)
					self.assertIn("&lt;", ticket.subject)  # kept as text, not dropped
					self.assertEqual(ticket.client_email, f"eve{i}{shape}@evil.example")
					if shape != "bare":
						self.assertIn("&lt;", comm.sender_full_name)
						self.assertIn("&lt;", ticket.client_name)

	def test_addresses_with_markup_never_become_participants_or_clients(self):
		for i, payload in enumerate(PAYLOADS[:4]):
			with self.subTest(payload=payload):
				local = payload.replace('"', "")
				raw = mail(
					"Quoted local parts",
					sender=f"client{i}@example.org",
					message_id=f"q{i}@example.org",
					cc=f'"{local}"@evil.example, ok{i}@example.org',
				)
				ticket, comm = self.stored(self.ingest(raw))
				self.assertEqual(ticket.cc_addresses, f"ok{i}@example.org")
				self.assert_no_markup(ticket.cc_addresses, comm.cc)
		raw = mail("From is markup", message_id="fm@evil.example")
		raw = raw.replace(
			b"From: Client <client@example.org>", b'From: "<img src=x onerror=alert(1)>"@evil.example'
		)
		result = ingest_raw(self.channel, raw, "test")
		self.assertEqual(result.outcome, "failed", "no usable sender: kept raw for an admin")
		failure = frappe.get_doc("Email Channel Failure", result.failure)
		self.assertIn("no usable sender", failure.error)
		self.assert_no_markup(failure.subject, failure.sender)

	def test_attachment_names_are_stored_without_markup(self):
		raw = multipart(
			"Files",
			"files@example.org",
			"files@example.org",
			[
				("text/plain", "", b"see files"),
				("application/pdf", "<img src=x onerror=alert(1)>.pdf", b"%PDF"),
			],
		)
		result = self.ingest(raw)
		names = frappe.get_all("File", {"attached_to_name": result.communication}, pluck="file_name")
		self.assertEqual(len(names), 1)
		self.assert_no_markup(*names)

	def test_a_stranger_cannot_join_a_ticket_by_message_id_or_token(self):
		first = self.ingest(mail("Order 1", sender="client@example.org", message_id="c1@example.org"))
		record_outgoing(self.channel.name, "reply1@site.example", first.ticket)
		ticket = frappe.get_doc("Ticket", first.ticket)
		for label, raw in (
			(
				"in-reply-to the client",
				mail(
					"Re: Order 1",
					sender="eve@evil.example",
					message_id="e1@evil.example",
					in_reply_to="c1@example.org",
					cc="spy@evil.example",
				),
			),
			(
				"in-reply-to our reply",
				mail(
					"Re: Order 1",
					sender="eve@evil.example",
					message_id="e2@evil.example",
					in_reply_to="reply1@site.example",
					cc="spy@evil.example",
				),
			),
			(
				"token",
				mail(
					f"Re: Order 1 [UD#{ticket.name}]",
					sender="eve@evil.example",
					message_id="e3@evil.example",
					cc="spy@evil.example",
				),
			),
		):
			with self.subTest(label):
				result = self.ingest(raw)
				self.assertNotEqual(result.ticket, first.ticket)
				other = frappe.get_doc("Ticket", result.ticket)
				self.assertEqual(
					other.previous_ticket, first.ticket, "the new ticket notes what it referred to"
				)
		ticket.reload()
		self.assertFalse(ticket.cc_addresses, "no stranger's Cc joined")

		# the real client still threads, both ways, and a participant they add joins
		for label, raw in (
			(
				"by id",
				mail(
					"Re: Order 1",
					sender="client@example.org",
					message_id="c2@example.org",
					in_reply_to="reply1@site.example",
					cc="colleague@example.org",
				),
			),
			(
				"by token",
				mail(
					f"Order 1 [UD#{ticket.name}]", sender="colleague@example.org", message_id="c3@example.org"
				),
			),
		):
			with self.subTest(label):
				self.assertEqual(self.ingest(raw).ticket, first.ticket)
		ticket.reload()
		self.assertEqual(ticket.cc_addresses, "colleague@example.org")

	def test_a_bounce_of_our_letter_joins_its_ticket_and_adds_no_one(self):
		first = self.ingest(mail("Order 2", sender="client2@example.org", message_id="o2@example.org"))
		record_outgoing(self.channel.name, "reply2@site.example", first.ticket)
		bounce = mail(
			"Undelivered Mail Returned to Sender",
			sender="MAILER-DAEMON@mx.example.org",
			message_id="b2@mx.example.org",
			in_reply_to="reply2@site.example",
			cc="someone@else.example",
			headers={"Auto-Submitted": "auto-replied"},
		)
		result = ingest_raw(self.channel, bounce, "test")
		self.assertEqual(result.ticket, first.ticket)
		self.assertFalse(frappe.db.get_value("Ticket", first.ticket, "cc_addresses"))
		# but an auto-reply citing only the client's own message id is a stranger's
		forged = mail(
			"Out of office",
			sender="eve@evil.example",
			message_id="oof@evil.example",
			in_reply_to="o2@example.org",
			headers={"Auto-Submitted": "auto-replied"},
		)
		self.assertEqual(ingest_raw(self.channel, forged, "test").outcome, "ignored:auto-reply")

	def test_a_message_id_sent_first_by_a_stranger_does_not_pre_empt_the_real_message(self):
		fake = self.ingest(mail("Pay here", sender="eve@evil.example", message_id="real@client.example"))
		real = self.ingest(mail("My order", sender="client@example.org", message_id="real@client.example"))
		self.assertFalse(real.duplicate)
		self.assertNotEqual(real.ticket, fake.ticket)
		self.assertEqual(frappe.db.get_value("Ticket", real.ticket, "subject"), "My order")

	def test_a_duplicate_with_other_bytes_is_kept_beside_the_message(self):
		raw = mail("Twice", sender="client@example.org", message_id="twice@client.example")
		first = self.ingest(raw)
		same = ingest_raw(self.channel, raw, "test")
		self.assertTrue(same.duplicate)
		other = raw.replace(b"Hello, I need help.", b"Hello, I need help. PS: call me.")
		for _ in range(2):
			again = ingest_raw(self.channel, other, "test")
			self.assertEqual((again.duplicate, again.communication), (True, first.communication))
		files = frappe.get_all("File", {"attached_to_name": first.communication}, ["file_name", "file_url"])
		self.assertEqual(len(files), 1, "the differing copy once, the identical one not at all")
		self.assertTrue(files[0].file_name.startswith("duplicate-"))
		self.assertEqual(file_bytes(files[0].file_url), other)

	def test_an_image_that_is_none_is_stored_as_plain_bytes(self):
		frappe.db.set_single_value("System Settings", "strip_exif_metadata_from_uploaded_images", 1)
		for name, payload in (
			("photo.jpg", b"MZ this is no jpeg"),
			("photo.jpeg", b"\xff\xd8\xff broken jpeg"),
		):
			with self.subTest(name):
				raw = multipart(
					name,
					"img@example.org",
					f"{name}@img.example",
					[("text/plain", "", b"pic"), ("image/jpeg", name, payload)],
				)
				result = self.ingest(raw)
				(file,) = frappe.get_all(
					"File", {"attached_to_name": result.communication}, ["file_name", "file_url"]
				)
				self.assertTrue(file.file_name.endswith(".bin"), file.file_name)
				self.assertEqual(file_bytes(file.file_url), payload)

	def test_very_many_recipients(self):
		to = ", ".join(f"person{i}@many.example" for i in range(5000))
		result = self.ingest(
			mail("Everyone", sender="boss@many.example", message_id="many@many.example", to=to)
		)
		ticket, comm = self.stored(result)
		self.assertEqual(len(ticket.cc_addresses.splitlines()), MAX_PARTICIPANTS)
		self.assertEqual(comm.recipients.count("@"), 5000, "the message keeps every recipient")

	def test_bodies_too_big_for_the_database_are_cut_and_the_original_kept(self):
		packet = int(frappe.db.sql("SELECT @@max_allowed_packet")[0][0])
		for megabytes in (8, 16, 24):
			with self.subTest(megabytes=megabytes):
				line = "Строка длинного письма. " * 40 + "\n"
				body = line * (megabytes * 1024 * 1024 // len(line.encode()))
				raw = mail(
					f"Big {megabytes}",
					sender="big@example.org",
					message_id=f"big{megabytes}@example.org",
					body=body,
				)
				result = self.ingest(raw)
				comm = frappe.get_doc("Communication", result.communication)
				self.assertLess(len(comm.content.encode()) + len(comm.text_content.encode()), packet)
				self.assertIn(ORIGINAL_NAME, comm.content)
				self.assertTrue(comm.text_content.startswith("Строка длинного письма."))
				(url,) = frappe.get_all(
					"File",
					{"attached_to_name": comm.name, "file_name": ("like", "original-message%")},
					pluck="file_url",
				)
				self.assertEqual(file_bytes(url), raw)
		after = self.ingest(mail("Small after big", sender="big@example.org", message_id="after@example.org"))
		self.assertEqual(after.outcome, "stored")

	def test_mail_html_cannot_reach_outside_the_mail(self):
		html = (
			'<div class="modal-backdrop" style="position:fixed;z-index:9999">Session expired</div>'
			'<img src="/api/method/logout"><img src="https://tracker.example/open.gif">'
			'<p>before</p><svg><circle r="1"></circle><p>after svg</p>'
		)
		raw = (
			"From: c@example.org\r\nTo: help@example.com\r\nSubject: html\r\nMessage-ID: <h@example.org>\r\n"
			"Content-Type: text/html; charset=utf-8\r\n\r\n" + html
		).encode()
		_ticket, comm = self.stored(self.ingest(raw))
		self.assertNotIn("modal", comm.content)
		self.assertNotIn("position", comm.content)
		self.assertNotIn("logout", comm.content)
		self.assertIn('data-remote-src="https://tracker.example/open.gif"', comm.content)
		self.assertNotRegex(comm.content, re.compile(r"<img[^>]*\ssrc=", re.I))
		self.assertIn("after svg", comm.content)


def big_mail(megabytes: int, tag: str, to: str = "help@example.com") -> bytes:
	line = "Строка длинного письма. " * 40 + "\n"
	body = line * (megabytes * 1024 * 1024 // len(line.encode()))
	return mail(f"Big {tag}", sender="big@example.org", message_id=f"{tag}@example.org", body=body, to=to)


class TestBigMailThroughEveryDoor(FrappeTestCase):
	"""8, 16 and 24 MB bodies by IMAP, the endpoint and the MTA command: stored cut, the
	original kept, the mail after them still ingested, the channel's health true."""

	def assert_cut_with_original(self, communication: str, raw: bytes, crlf: bool = False) -> None:
		"""`crlf`: the server stored the message with CRLF line ends (IMAP)."""
		comm = frappe.get_doc("Communication", communication)
		self.assertIn(ORIGINAL_NAME, comm.content)
		(url,) = frappe.get_all(
			"File",
			{"attached_to_name": communication, "file_name": ("like", "original-message%")},
			pluck="file_url",
		)
		kept = file_bytes(url)
		self.assertEqual(
			kept.replace(b"\r\n", b"\n") if crlf else kept, raw.replace(b"\r\n", b"\n") if crlf else raw
		)

	def setUp(self):
		self.run_id = frappe.generate_hash(length=8)  # the site keeps what earlier runs stored

	def test_imap(self):
		server = DovecotServer().start()
		try:
			box = server.new_mailbox("big")
			channel = dovecot_channel(server, box, f"big {box.user}")
			sent = {}
			for megabytes in (8, 16, 24):
				sent[f"imap{megabytes}-{self.run_id}"] = raw = big_mail(
					megabytes, f"imap{megabytes}-{self.run_id}"
				)
				server.deliver(box.user, raw)
			server.deliver(
				box.user,
				mail(
					"After the big ones",
					sender="small@example.org",
					message_id=f"imap-after-{self.run_id}@example.org",
				),
			)
			outcome = poll_channel(channel.name)
			self.assertEqual((outcome["result"], outcome["stored"], outcome["failed"]), ("ok", 4, 0), outcome)
			for tag, raw in sent.items():
				(name,) = frappe.get_all("Communication", {"message_id": f"{tag}@example.org"}, pluck="name")
				self.assert_cut_with_original(name, raw, crlf=True)
			health = frappe.db.get_value(
				"Email Channel", channel.name, ["consecutive_failures", "messages_ingested"], as_dict=True
			)
			self.assertEqual((health.consecutive_failures, health.messages_ingested), (0, 4))
			self.assertTrue(all("\\Seen" in f for f in server.flags(box.user).values()))
		finally:
			server.stop()

	def test_endpoint_and_mta_command(self):
		set_settings(inbound_domain="inbound.example.com", max_message_size_mb=25, inbound_rate_limit=600)
		channel = make_channel(
			f"big internal {frappe.generate_hash(length=6)}",
			incoming_type="Internal",
			main_email="support@shop.example",
			from_email="support@shop.example",
			inbound_secret=SECRET,
		)
		frappe.db.commit()
		with served_site() as base:
			for megabytes in (8, 16, 24):
				raw = big_mail(megabytes, f"http{megabytes}-{self.run_id}", to=channel.internal_address)
				answer = requests.post(
					base + "/api/method/usedesk_email.api.inbound",
					data=raw,
					headers={"Content-Type": "message/rfc822", "X-Usedesk-Secret": SECRET},
					timeout=300,
				)
				frappe.db.commit()
				self.assertEqual(answer.status_code, 200, answer.text[:300])
				self.assert_cut_with_original(answer.json()["message"]["message"], raw)
		for megabytes in (8, 16, 24):
			raw = big_mail(megabytes, f"pipe{megabytes}-{self.run_id}")
			result = run_bench(
				["usedesk-email", "deliver", "--recipient", channel.internal_address], stdin=raw
			)
			self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace")[-500:])
			(name,) = frappe.get_all(
				"Communication", {"message_id": f"pipe{megabytes}-{self.run_id}@example.org"}, pluck="name"
			)
			self.assert_cut_with_original(name, raw)
		after = run_bench(
			["usedesk-email", "deliver", "--recipient", channel.internal_address],
			stdin=mail(
				"After", sender="small@example.org", message_id=f"pipe-after-{self.run_id}@example.org"
			),
		)
		self.assertEqual(after.returncode, 0)
		self.assertTrue(
			frappe.db.exists("Communication", {"message_id": f"pipe-after-{self.run_id}@example.org"})
		)


class TestBulkMailPolicy(FrappeTestCase):
	def test_bulk_mail_opens_a_ticket_or_is_ignored_by_the_channels_choice(self):
		raw = open(os.path.join(EML, "bulk_list.eml"), "rb").read()
		opening = make_channel(f"bulk open {frappe.generate_hash(length=6)}")
		self.assertEqual(ingest_raw(opening, raw, "test").outcome, "stored")
		ignoring = make_channel(f"bulk ignore {frappe.generate_hash(length=6)}", bulk_mail="Ignore")
		result = ingest_raw(ignoring, raw, "test")
		self.assertEqual((result.outcome, result.ticket), ("ignored:bulk", None))
		self.assertEqual(
			frappe.db.get_value(CHANNEL_MESSAGE, {"channel": ignoring.name}, "outcome"),
			"ignored:bulk",
			"the reason shows",
		)
		# a person's mail on the same channel still opens a ticket
		self.assertEqual(
			ingest_raw(ignoring, mail("Help", message_id="p@client.example"), "test").outcome, "stored"
		)


class TestMailOwnership(FrappeTestCase):
	def test_a_ticket_and_its_messages_from_mail_belong_to_their_sender(self):
		channel = make_channel(f"owner {frappe.generate_hash(length=6)}")
		for user in ("Administrator", "Guest"):  # the poll runs as the one, the endpoint as the other
			frappe.set_user(user)
			try:
				result = ingest_raw(
					channel,
					mail("Mine", sender="Owner@Example.org", message_id=f"own-{user}@example.org"),
					"t",
				)
			finally:
				frappe.set_user("Administrator")
			self.assertEqual(frappe.db.get_value("Ticket", result.ticket, "owner"), "owner@example.org")
			self.assertEqual(
				frappe.db.get_value("Communication", result.communication, "owner"), "owner@example.org"
			)


class TestStaleForm(FrappeTestCase):
	def test_a_form_opened_before_a_clients_reopen_cannot_save_over_it(self):
		channel = make_channel(f"stale {frappe.generate_hash(length=6)}")
		first = ingest_raw(channel, mail("Kettle", sender="c@example.org", message_id="s1@example.org"), "t")
		frappe.db.set_value("Ticket", first.ticket, "status", "Replied")
		frappe.db.commit()
		form = frappe.get_doc("Ticket", first.ticket)  # what the agent's browser holds
		reply = mail(
			"Re: Kettle", sender="c@example.org", message_id="s2@example.org", in_reply_to="s1@example.org"
		)
		self.assertEqual(ingest_raw(channel, reply, "t").ticket, first.ticket)
		fresh = frappe.get_doc("Ticket", first.ticket)
		self.assertEqual(fresh.status, "Open")
		self.assertGreater(fresh.modified, form.modified, "Last Updated On follows the client's message")
		form.cc_addresses = "colleague@example.org"
		with self.assertRaises(frappe.TimestampMismatchError):
			form.save()
