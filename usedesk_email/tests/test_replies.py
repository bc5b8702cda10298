# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import io
from email.message import EmailMessage
from unittest.mock import patch

import frappe
import requests
from frappe.utils import add_to_date, now_datetime
from PIL import Image

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.inbound.poll import poll_channel
from usedesk_email.mail.thread_keys import ticket_token
from usedesk_email.outbound.delivery import due_replies, send_communication
from usedesk_email.outbound.drafts import earlier_messages
from usedesk_email.outbound.replies import create_reply, forward_ticket
from usedesk_email.testing.desk import (
	agent_user,
	mail,
	messages_of,
	outgoing_account,
	served_site,
	user_with_role,
)
from usedesk_email.testing.ports import free_port
from usedesk_email.testing.replies import COMMON, ReplyFixture
from usedesk_email.testing.smtp_server import SmtpTestServer
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE


class TestReplies(ReplyFixture):
	"""Agents' replies and forwards."""

	def test_one_letter_per_recipient_bcc_copy_personal_signature_once_and_the_quote(self):
		answer = self.reply_as(self.agent, "<p>We will send a new one.</p>")
		letters = self.letters()
		self.assertEqual(set(letters), {"client@example.org", "boss@example.org", "archive@shop.example"})
		client = letters["client@example.org"]
		self.assertEqual(client["To"], "client@example.org")
		self.assertEqual(client["From"], "Shop Support <help@shop.example>")
		self.assertEqual(client["Subject"], f"Re: Kettle broken {ticket_token(self.ticket)}")
		self.assertEqual(client["In-Reply-To"], "<k1@client.example>")
		html = client.get_body(("html",)).get_content()
		self.assertEqual(html.count("second line support"), 1)
		self.assertNotIn("The Shop support team", html, "the personal signature wins")
		self.assertIn("wrote:", html)
		self.assertIn("My kettle is broken.", html)
		self.assertEqual(letters["boss@example.org"]["To"], "boss@example.org")
		self.assertNotIn("archive@shop.example", str(client))

		comm = frappe.get_doc("Communication", answer["communication"])
		self.assertEqual(comm.delivery_status, "Sent")
		self.assertEqual({r.status for r in self.rows(comm.name).values()}, {"Sent"})
		ticket = frappe.get_doc("Ticket", self.ticket)
		self.assertEqual(ticket.status, "Replied")
		self.assertTrue(ticket.first_response_at)
		self.assertFalse(ticket.delivery_problem)

		send_communication(comm.name)
		self.assertEqual(len(self.smtp.deliveries), 3, "a second run sends nothing again")

	def test_a_clients_quoted_history_is_collapsed_in_the_timeline_and_quoted_whole(self):
		answer = (
			"Here it is.\r\n\r\nOn 06.06.2024 11:58, Support wrote:\r\n"
			"> could you send us the log file?\r\n> Support team\r\n"
		)
		raw = mail(
			f"Re: Kettle broken {ticket_token(self.ticket)}",
			message_id="k2@client.example",
			in_reply_to="k1@client.example",
			to="help@shop.example",
			body=answer,
		)
		stored = ingest_raw(self.channel, raw, "test")
		self.assertEqual(stored.ticket, self.ticket)
		content = frappe.db.get_value("Communication", stored.communication, "content")
		new, history = content.split('<details class="usedesk-quoted">')
		self.assertIn("Here it is.", new)
		self.assertNotIn("could you send us", new)
		self.assertIn("<summary>Quoted text</summary>", history)
		self.assertIn("Support wrote:", history)
		self.assertIn("could you send us the log file?", history)

		self.reply_as(self.agent, "<p>Thanks, received.</p>")
		html = self.letters()["client@example.org"].get_body(("html",)).get_content()
		self.assertIn("Here it is.", html)
		self.assertIn("could you send us the log file?", html, "the quote holds the client's history too")
		self.assertNotIn("<details", html)
		self.assertNotIn("Quoted text", html)

	def test_common_signature_then_none_and_never_twice(self):
		self.reply_as(self.plain_agent, "<p>First answer.</p>")
		html = self.own_part()
		self.assertEqual(html.count("The Shop support team"), 1)

		self.smtp.deliveries.clear()
		self.reply_as(self.plain_agent, f"<p>Signed by hand.</p>{COMMON}")
		html = self.own_part()
		self.assertEqual(html.count("The Shop support team"), 1, "never twice")

		frappe.db.set_value("Email Channel", self.channel.name, "use_common_signature", 0)
		self.smtp.deliveries.clear()
		self.reply_as(self.plain_agent, "<p>Unsigned.</p>")
		html = self.own_part()
		self.assertNotIn("The Shop support team", html)

	def test_quote_off_and_do_not_quote(self):
		frappe.db.set_value("Email Channel", self.channel.name, "display_quote", 0)
		self.reply_as(self.plain_agent, "<p>No quote wanted.</p>")
		self.assertNotIn("wrote:", self.letters()["client@example.org"].get_body(("html",)).get_content())
		frappe.db.set_value("Email Channel", self.channel.name, {"display_quote": 1, "do_not_quote": 1})
		self.smtp.deliveries.clear()
		self.reply_as(self.plain_agent, "<p>Still no quote.</p>")
		text = self.letters()["client@example.org"].get_body(("plain",)).get_content()
		self.assertNotIn("My kettle is broken.", text)

	def test_temporary_failure_is_retried_with_backoff_and_a_permanent_one_is_shown(self):
		self.smtp.refuse["client@example.org"] = "451 4.3.0 greylisted, try later"
		self.smtp.refuse["boss@example.org"] = "550 5.1.1 no such user"
		answer = self.reply_as(self.plain_agent, "<p>Will it arrive?</p>")
		rows = self.rows(answer["communication"])
		self.assertEqual(rows["client@example.org"].status, "Temporary failure")
		self.assertGreater(rows["client@example.org"].next_attempt_at, now_datetime())
		self.assertEqual(rows["boss@example.org"].status, "Failed")
		self.assertIn("no such user", rows["boss@example.org"].error)
		self.assertEqual(rows["archive@shop.example"].status, "Sent")
		self.assertEqual(
			frappe.db.get_value("Communication", answer["communication"], "delivery_status"), "Error"
		)
		problem = frappe.db.get_value("Ticket", self.ticket, "delivery_problem")
		self.assertIn("boss@example.org", problem)
		self.assertIn("greylisted", problem)

		send_communication(answer["communication"])  # not due yet: nothing happens
		self.assertEqual(self.rows(answer["communication"])["client@example.org"].attempts, 1)

		del self.smtp.refuse["client@example.org"]
		frappe.db.set_value(
			CHANNEL_MESSAGE,
			{"communication": answer["communication"], "recipient": "client@example.org"},
			"next_attempt_at",
			add_to_date(now_datetime(), minutes=-1),
		)
		frappe.db.commit()
		send_communication(answer["communication"])
		rows = self.rows(answer["communication"])
		self.assertEqual(
			(rows["client@example.org"].status, rows["client@example.org"].attempts), ("Sent", 2)
		)
		self.assertEqual(
			rows["boss@example.org"].status, "Failed", "a permanent failure is never retried alone"
		)
		self.assertNotIn("greylisted", frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))

	def test_uncertain_send_is_flagged_and_never_resent_by_itself(self):
		self.smtp.drop_after_data.add("client@example.org")
		answer = self.reply_as(self.plain_agent, "<p>Did it arrive?</p>")
		rows = self.rows(answer["communication"])
		self.assertEqual(rows["client@example.org"].status, "Uncertain")
		self.assertIn("Uncertain", frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))
		before = len(self.smtp.deliveries)
		self.smtp.drop_after_data.clear()
		send_communication(answer["communication"])
		self.assertEqual(self.rows(answer["communication"])["client@example.org"].status, "Uncertain")
		self.assertEqual(len(self.smtp.deliveries), before)

		frappe.set_user(self.plain_agent)
		frappe.call("usedesk_email.api.retry_sending", ticket=int(self.ticket))  # the form's button
		frappe.set_user("Administrator")
		frappe.db.commit()
		send_communication(answer["communication"])
		self.assertEqual(self.rows(answer["communication"])["client@example.org"].status, "Sent")
		self.assertIn("client@example.org", self.letters())

	def test_the_clients_answer_delivered_into_dovecot_threads_back(self):
		self.reply_as(self.plain_agent, "<p>Please send a photo.</p>")
		ours = self.letters()["client@example.org"]["Message-ID"].strip("<>")
		self.dovecot.deliver(
			self.box.user,
			mail(
				f"Re: Kettle broken {ticket_token(self.ticket)}",
				message_id="k2@client.example",
				in_reply_to=ours,
			),
		)
		outcome = poll_channel(self.channel.name)
		self.assertEqual(outcome["stored"], 1, outcome)
		by_id = {m.message_id: m.reference_name for m in messages_of(self.channel.name)}
		self.assertEqual(by_id["k2@client.example"], self.ticket)
		self.assertEqual(frappe.db.get_value("Ticket", self.ticket, "status"), "Open")

	def test_forward_creates_a_linked_ticket_with_the_correspondence_and_sends_from_it(self):
		frappe.set_user(self.plain_agent)
		result = forward_ticket(self.ticket, "Partner@Example.net", "Can you help this client?")
		frappe.set_user("Administrator")
		frappe.db.commit()
		new = frappe.get_doc("Ticket", result["ticket"])
		self.assertEqual(
			(new.forwarded_from, new.client_email, new.channel),
			(self.ticket, "partner@example.net", self.channel.name),
		)
		comments = frappe.get_all(
			"Comment",
			filters={"reference_doctype": "Ticket", "reference_name": new.name, "comment_type": "Comment"},
			pluck="content",
		)
		self.assertTrue(any("My kettle is broken." in c for c in comments), comments)
		send_communication(result["communication"])
		letter = self.letters()["partner@example.net"]
		self.assertEqual(letter["Subject"], f"Fwd: Kettle broken {ticket_token(new.name)}")
		self.assertIsNone(letter["In-Reply-To"])
		body = letter.get_body(("plain",)).get_content()
		self.assertIn("Can you help this client?", body)
		self.assertIn("My kettle is broken.", body)

		self.dovecot.deliver(
			self.box.user,
			mail(
				"Re: Fwd: Kettle broken",
				sender="partner@example.net",
				message_id="p1@example.net",
				in_reply_to=letter["Message-ID"].strip("<>"),
			),
		)
		poll_channel(self.channel.name)
		by_id = {m.message_id: m.reference_name for m in messages_of(self.channel.name)}
		self.assertEqual(
			by_id["p1@example.net"], str(new.name), "the partner's answer threads into the new ticket"
		)

	def test_rest_reply_and_the_desk_composer_send_once_through_the_channel(self):
		key, secret = user_with_role("rest-agent@example.com", "Support Agent")
		nobody_key, nobody_secret = user_with_role("rest-nobody@example.com", None)
		frappe.db.commit()
		headers = {"Authorization": f"token {key}:{secret}"}
		with served_site() as base:
			rest = requests.post(
				f"{base}/api/method/usedesk_email.api.reply",
				json={"ticket": int(self.ticket), "content": "<p>Via REST.</p>"},
				headers=headers,
				timeout=60,
			)
			self.assertEqual(rest.status_code, 200, rest.text)
			desk = requests.post(  # as the desk's frappe.call sends it: lists JSON-encoded in a form
				f"{base}/api/method/usedesk_email.api.reply",
				data={
					"ticket": self.ticket,
					"content": "<p>Via the Reply dialog.</p>",
					"attachments": "[]",
					"cc": '["dialog-cc@example.net"]',
				},
				headers=headers,
				timeout=60,
			)
			self.assertEqual(desk.status_code, 200, desk.text)
			composer = requests.post(
				f"{base}/api/method/frappe.core.doctype.communication.email.make",
				json={
					"doctype": "Ticket",
					"name": self.ticket,
					"content": "<p>Via the desk composer.</p>",
					"subject": "Re: Kettle broken",
					"recipients": "client@example.org",
					"cc": "newcomer@example.net",
					"send_email": 1,
				},
				headers=headers,
				timeout=60,
			)
			self.assertEqual(composer.status_code, 200, composer.text)
			refused = requests.post(
				f"{base}/api/method/usedesk_email.api.reply",
				json={"ticket": self.ticket, "content": "<p>Not mine.</p>"},
				headers={"Authorization": f"token {nobody_key}:{nobody_secret}"},
				timeout=60,
			)
			self.assertEqual(refused.status_code, 403, refused.text)
		frappe.db.commit()
		sent = frappe.get_all(
			"Communication",
			filters={
				"reference_doctype": "Ticket",
				"reference_name": self.ticket,
				"sent_or_received": "Sent",
			},
			pluck="name",
		)
		self.assertEqual(len(sent), 3)
		self.assertFalse(frappe.get_all("Email Queue", filters={"communication": ("in", sent)}))
		for name in sent:
			send_communication(name)
		letters = [d.rcpt_tos[0] for d in self.smtp.deliveries]
		self.assertEqual(letters.count("client@example.org"), 3, "one letter per reply, no second copy")
		self.assertIn("dialog-cc@example.net", letters)
		self.assertIn("newcomer@example.net", letters, "the composer's CC joined the ticket")
		self.assertIn("newcomer@example.net", frappe.db.get_value("Ticket", self.ticket, "cc_addresses"))

	def test_due_temporary_failures_are_found_by_the_scheduler(self):
		self.smtp.refuse["client@example.org"] = "451 4.3.0 later"
		answer = self.reply_as(self.plain_agent, "<p>Later.</p>")
		self.assertNotIn(answer["communication"], due_replies())
		frappe.db.set_value(
			CHANNEL_MESSAGE,
			{"communication": answer["communication"], "recipient": "client@example.org"},
			"next_attempt_at",
			add_to_date(now_datetime(), minutes=-1),
		)
		self.assertIn(answer["communication"], due_replies())

	def test_site_images_in_the_quote_go_as_cid_parts_and_remote_ones_keep_their_url(self):
		elsewhere = frappe.get_doc(  # a site file that no message of the ticket carries
			{"doctype": "File", "file_name": "payroll.txt", "content": b"not for clients", "is_private": 1}
		).insert(ignore_permissions=True)
		raw = html_mail(
			"Photo of the kettle",
			f'<p>See:</p><img src="cid:photo1"><img src="https://cdn.example.com/logo.png">'
			f'<img src="{elsewhere.file_url}">',
			related=[("photo1", "kettle.png", png_bytes())],
		)
		ticket = str(ingest_raw(self.channel, raw, "test").ticket)
		stored = earlier_messages(ticket)[0]
		self.assertIn("/private/files/", stored.content, "ingestion points the image at its File")
		self.reply_as(self.plain_agent, "<p>Thanks for the photo.</p>", ticket=ticket)

		delivery = next(d for d in self.smtp.deliveries if d.rcpt_tos[0] == "client@example.org")
		letter = self.letters()["client@example.org"]
		related = [p for p in letter.walk() if p.get_content_type() == "multipart/related"]
		self.assertEqual(len(related), 1)
		html_part, *images = related[0].get_payload()
		self.assertEqual([i.get_content_type() for i in images], ["image/png"])
		file = frappe.get_doc("File", {"attached_to_name": stored.name, "file_name": ("like", "kettle%")})
		self.assertEqual(images[0].get_content(), file.get_content())
		body = html_part.get_content()
		self.assertIn(f'src="cid:{images[0]["Content-ID"].strip("<>")}"', body)
		self.assertIn('src="https://cdn.example.com/logo.png"', body, "remote images keep their URL")
		texts = [p.get_content() for p in letter.walk() if p.get_content_maintype() == "text"]
		self.assertFalse([t for t in texts if "/files/" in t])
		self.assertNotIn(b"/private/files/", delivery.data)
		self.assertNotIn(b"not for clients", delivery.data)

	def test_a_forward_attaches_the_originals_files_within_its_limit_and_names_the_rest(self):
		raw = html_mail(
			"Invoice question",
			"<p>The invoice and the scan are attached.</p>",
			attachments=[("invoice.pdf", b"%PDF-1.4 small invoice"), ("scan.zip", b"x" * 5000)],
		)
		ticket = str(ingest_raw(self.channel, raw, "test").ticket)
		frappe.set_user(self.plain_agent)
		result = forward_ticket(ticket, "partner@example.net", "Please check the invoice.")
		frappe.set_user("Administrator")
		frappe.db.commit()
		with patch("usedesk_email.outbound.drafts.FORWARD_MAX_BYTES", 1000):
			send_communication(result["communication"])
		letter = self.letters()["partner@example.net"]
		files = {p.get_filename(): p.get_content() for p in letter.iter_attachments()}
		self.assertEqual(files, {"invoice.pdf": b"%PDF-1.4 small invoice"})
		text = letter.get_body(("plain",)).get_content()
		self.assertIn("Not attached, over the limit of 1 KB for a forward: scan.zip (5 KB)", text)
		self.assertIn("scan.zip", letter.get_body(("html",)).get_content())

	def test_bad_forwards(self):
		for address in ("not-an-address", "a@example.org, b@example.org", "help@shop.example", ""):
			with self.assertRaises(frappe.ValidationError, msg=address):
				forward_ticket(self.ticket, address)
		frappe.db.set_value("Email Channel", self.channel.name, "forward_as_new_ticket", 0)
		with self.assertRaises(frappe.ValidationError):
			forward_ticket(self.ticket, "partner@example.net")
		self.assertFalse(frappe.get_all("Ticket", filters={"forwarded_from": self.ticket}))

	def test_empty_reply_and_a_user_without_permission_are_refused(self):
		before = len(messages_of(self.channel.name))
		for content in ("", "<p><br></p>", "   "):
			with self.assertRaises(frappe.ValidationError):
				create_reply(self.ticket, content)
		outsider = agent_user("outsider@example.com", signature="", role=None)
		frappe.set_user(outsider)
		try:
			with self.assertRaises(frappe.PermissionError):
				create_reply(self.ticket, "<p>Not mine to answer.</p>")
		finally:
			frappe.set_user("Administrator")
		self.assertEqual(len(messages_of(self.channel.name)), before)

	def test_channel_that_cannot_send_keeps_the_reply_and_says_why(self):
		frappe.db.set_value("Email Channel", self.channel.name, "smtp_host", "127.0.0.1")
		frappe.db.set_value("Email Channel", self.channel.name, "smtp_port", free_port())
		answer = self.reply_as(self.plain_agent, "<p>Into the void.</p>")
		self.assertTrue(frappe.db.exists("Communication", answer["communication"]))
		rows = self.rows(answer["communication"])
		self.assertEqual({r.status for r in rows.values()}, {"Temporary failure"})
		self.assertIn("Temporary failure", frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))

		frappe.db.set_value("Email Channel", self.channel.name, "outgoing_type", "Internal")
		sending = frappe.get_all("Email Account", filters={"enable_outgoing": 1}, pluck="name")
		frappe.db.set_value("Email Account", {"name": ("in", sending or ["-"])}, "enable_outgoing", 0)
		frappe.local.outgoing_email_account = {}  # Frappe's per-process cache of the lookup
		frappe.db.commit()
		before = frappe.db.count("Communication", {"reference_name": self.ticket})
		try:
			with self.assertRaises(frappe.ValidationError) as refused:
				self.reply_as(self.plain_agent, "<p>No outgoing account.</p>")
		finally:
			frappe.set_user("Administrator")
			frappe.db.set_value("Email Account", {"name": ("in", sending or ["-"])}, "enable_outgoing", 1)
			frappe.local.outgoing_email_account = {}
			frappe.db.commit()
		self.assertIn("no outgoing Email Account", str(refused.exception))  # refused up front, with why
		self.assertEqual(frappe.db.count("Communication", {"reference_name": self.ticket}), before)

	def test_internal_outgoing_goes_through_the_email_queue_once(self):
		with SmtpTestServer(security="none") as site_smtp:
			account = outgoing_account(site_smtp)
			frappe.db.set_value("Email Channel", self.channel.name, "outgoing_type", "Internal")
			frappe.db.commit()
			try:
				answer = self.reply_as(self.plain_agent, "<p>Via the site's outgoing mail.</p>")
				queues = frappe.get_all(
					"Email Queue", filters={"communication": answer["communication"]}, pluck="name"
				)
				self.assertEqual(len(queues), 3, "one queue entry per letter, and no other")
				frappe.flags.testing_email = True
				for name in queues:
					frappe.get_doc("Email Queue", name).send()
			finally:
				frappe.flags.testing_email = False
				frappe.delete_doc("Email Account", account, force=True)
				frappe.db.commit()
			delivered = {d.rcpt_tos[0]: d.data for d in site_smtp.deliveries}
			self.assertEqual(
				set(delivered), {"client@example.org", "boss@example.org", "archive@shop.example"}
			)
			rows = self.rows(answer["communication"])
			self.assertIn(rows["client@example.org"].message_id.encode(), delivered["client@example.org"])
			self.assertIn(b"From: Shop Support <help@shop.example>", delivered["client@example.org"])
			self.assertEqual(
				frappe.db.get_value("Communication", answer["communication"], "delivery_status"), "Sent"
			)


def html_mail(subject: str, body: str, related=(), attachments=(), message_id: str | None = None) -> bytes:
	"""A client's HTML letter with inline parts (content id, file name, PNG bytes) and attachments."""
	message = EmailMessage()
	message["From"] = "Client <client@example.org>"
	message["To"] = "help@shop.example"
	message["Subject"] = subject
	message["Message-ID"] = f"<{message_id or frappe.generate_hash(length=12)}@client.example>"
	message.set_content("See the HTML part.")
	message.add_alternative(body, subtype="html")
	for cid, name, payload in related:
		message.get_body(("html",)).add_related(payload, "image", "png", cid=f"<{cid}>", filename=name)
	for name, payload in attachments:
		message.add_attachment(payload, "application", "octet-stream", filename=name)
	return message.as_bytes()


def png_bytes() -> bytes:
	buffer = io.BytesIO()
	Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
	return buffer.getvalue()
