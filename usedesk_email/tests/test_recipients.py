# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Participants and recipients: concurrent additions never lost, a bad address never blocks
the letters to the others, retrying a ticket retries everything that failed, and a ticket is
Replied only once a letter is out."""

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import frappe
from frappe.utils import get_system_timezone

from usedesk_email.api import retry_sending
from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.outbound.delivery import send_communication
from usedesk_email.outbound.replies import create_reply, forward_ticket
from usedesk_email.participants import MAX_PARTICIPANTS, split_lines
from usedesk_email.testing.desk import agent_user, mail
from usedesk_email.testing.replies import ReplyFixture
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

WORKERS = 24


class TestRecipients(ReplyFixture):
	"""Against the real SMTP server and Dovecot of the replies' tests."""

	def test_concurrent_additions_keep_every_participant(self):
		code = textwrap.dedent(
			f"""
			import sys, frappe
			frappe.init(site={frappe.local.site!r}, sites_path={frappe.local.sites_path!r})
			frappe.connect()
			from usedesk_email.participants import add_participants
			for n in range(4):
				add_participants({self.ticket!r}, [f"p{{sys.argv[1]}}-{{n}}@many.example"])
				frappe.db.commit()
			frappe.destroy()
			"""
		)
		workers = [
			subprocess.Popen([sys.executable, "-c", code, str(i)], cwd=frappe.local.sites_path)
			for i in range(WORKERS // 2)
		]
		self.assertEqual([w.wait(timeout=300) for w in workers], [0] * len(workers))
		frappe.db.commit()
		kept = split_lines(frappe.db.get_value("Ticket", self.ticket, "cc_addresses"))
		self.assertEqual(len(kept), min(MAX_PARTICIPANTS, 1 + 4 * (WORKERS // 2)))
		self.assertEqual(len(set(kept)), len(kept))

	def test_a_bad_inbound_address_is_refused_by_name_and_the_others_get_their_letters(self):
		for bad in ("иван@почта.рф", "boss@intranet"):
			with self.subTest(bad):
				self.smtp.deliveries.clear()
				ticket = self.incoming("Bad cc", f"bad-{bad}@client.example", cc=f"{bad}, good@example.org")
				self.assertIn(bad, split_lines(frappe.db.get_value("Ticket", ticket, "cc_addresses")))
				answer = self.reply_as(self.agent, "<p>Here you go</p>", ticket=ticket)
				self.assertEqual(
					sorted(self.letters()), ["archive@shop.example", "client@example.org", "good@example.org"]
				)
				refused = frappe.get_all(
					CHANNEL_MESSAGE,
					{"communication": answer["communication"], "status": "Refused"},
					["recipient", "error"],
				)
				self.assertEqual([r.recipient for r in refused], [bad])
				problem = frappe.db.get_value("Ticket", ticket, "delivery_problem")
				self.assertIn(bad, problem)
				self.assertEqual(frappe.db.get_value("Ticket", ticket, "status"), "Replied")
				# a second reply is not blocked either
				self.smtp.deliveries.clear()
				self.reply_as(self.agent, "<p>And again</p>", ticket=ticket)
				self.assertIn("good@example.org", self.letters())

	def test_an_agents_cc_is_read_like_a_mail_client_and_bad_ones_are_refused_at_once(self):
		frappe.set_user(self.agent)
		try:
			create_reply(
				self.ticket,
				"<p>x</p>",
				cc=["Named One <one@example.org>, two@example.org; three@example.org"],
			)
			for bad in (
				"boss@intranet",
				"иван@почта.рф",
				'"quoted local"@example.org',
				"not an address",
				"a@b@c.example",
			):
				with self.subTest(bad), self.assertRaises(frappe.InvalidEmailAddressError) as caught:
					create_reply(self.ticket, "<p>x</p>", cc=[f"ok@example.org, {bad}"])
				self.assertIn("cannot be sent to", str(caught.exception))
				self.assertNotIn("ok@example.org", str(caught.exception), "only the bad one is named")
		finally:
			frappe.set_user("Administrator")
		cc = split_lines(frappe.db.get_value("Ticket", self.ticket, "cc_addresses"))
		self.assertEqual(cc, ["boss@example.org", "one@example.org", "two@example.org", "three@example.org"])

	def test_ticket_retry_retries_every_failed_letter_and_the_banner_tells_the_truth(self):
		self.smtp.refuse["boss@example.org"] = "550 5.1.1 no such user"
		first = self.reply_as(self.agent, "<p>One</p>")
		second = self.reply_as(self.agent, "<p>Two</p>")
		problem = frappe.db.get_value("Ticket", self.ticket, "delivery_problem")
		self.assertEqual(problem.count("boss@example.org"), 2, problem)
		self.smtp.refuse.clear()
		self.smtp.deliveries.clear()
		frappe.set_user(self.agent)
		try:
			answer = retry_sending(ticket=self.ticket)
		finally:
			frappe.set_user("Administrator")
		self.assertEqual(
			sorted(answer["communications"]), sorted([first["communication"], second["communication"]])
		)
		for name in answer["communications"]:
			send_communication(name)
		self.assertEqual([d.rcpt_tos[0] for d in self.smtp.deliveries], ["boss@example.org"] * 2)
		self.assertFalse(frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))

	def test_a_reply_that_cannot_be_composed_is_retried_from_the_ticket(self):
		frappe.db.set_value("Email Channel", self.channel.name, "bcc_email", "archive@intranet")
		answer = self.reply_as(self.agent, "<p>Unlucky</p>")
		self.assertEqual(
			frappe.db.get_value("Communication", answer["communication"], "delivery_status"), "Error"
		)
		self.assertIn("could not be composed", frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))
		self.assertEqual(frappe.db.get_value("Ticket", self.ticket, "status"), "Open", "nothing went out")
		frappe.db.set_value("Email Channel", self.channel.name, "bcc_email", "archive@shop.example")
		frappe.db.commit()
		self.assertEqual(retry_sending(ticket=self.ticket)["communications"], [answer["communication"]])
		send_communication(answer["communication"])
		self.assertIn("client@example.org", self.letters())
		self.assertFalse(frappe.db.get_value("Ticket", self.ticket, "delivery_problem"))
		self.assertEqual(frappe.db.get_value("Ticket", self.ticket, "status"), "Replied")

	def test_a_reply_whose_every_letter_failed_leaves_the_ticket_open(self):
		self.smtp.refuse["client@example.org"] = "550 5.1.1 no such user"
		self.smtp.refuse["boss@example.org"] = "550 5.1.1 no such user"
		self.smtp.refuse["archive@shop.example"] = "550 5.1.1 no such user"
		self.reply_as(self.agent, "<p>Nobody gets this</p>")
		ticket = frappe.db.get_value("Ticket", self.ticket, ["status", "first_response_at"], as_dict=True)
		self.assertEqual((ticket.status, ticket.first_response_at), ("Open", None))

	def test_a_reply_over_the_letter_cap_is_refused(self):
		frappe.db.set_value("Email Channel", self.channel.name, "max_letters_per_reply", 3)
		frappe.db.commit()
		frappe.set_user(self.agent)
		try:
			create_reply(self.ticket, "<p>fits</p>", cc=["third@example.org"])
			with self.assertRaises(frappe.ValidationError) as caught:
				create_reply(self.ticket, "<p>too many</p>", cc=["fourth@example.org"])
		finally:
			frappe.set_user("Administrator")
		self.assertIn("4 letters", str(caught.exception))
		self.assertNotIn("fourth@example.org", frappe.db.get_value("Ticket", self.ticket, "cc_addresses"))

	def test_replies_thread_to_and_quote_people_not_auto_replies(self):
		first = self.reply_as(self.agent, "<p>Looking into it.</p>")
		ours = frappe.db.get_value(
			CHANNEL_MESSAGE,
			{"communication": first["communication"], "recipient": "client@example.org"},
			"message_id",
		)
		oof = mail(
			"Out of office",
			message_id="oof@client.example",
			in_reply_to=ours,
			to="help@shop.example",
			body="I am out of office until Monday.",
			headers={"Auto-Submitted": "auto-replied"},
		)
		self.assertEqual(str(ingest_raw(self.channel, oof, "t").ticket), self.ticket)
		self.smtp.deliveries.clear()
		second = self.reply_as(self.agent, "<p>Done.</p>")
		letter = self.letters()["client@example.org"]
		self.assertNotIn("oof@client.example", letter["In-Reply-To"] + (letter["References"] or ""))
		self.assertIn(ours, letter["In-Reply-To"], "threaded to the last message a person wrote")
		self.assertNotIn("out of office", letter.get_body(("plain",)).get_content())
		self.assertIn("Looking into it.", letter.get_body(("plain",)).get_content())
		name = frappe.db.get_value("Communication", second["communication"], "sender_full_name")
		self.assertEqual(name, f"{frappe.utils.get_fullname(self.agent)} via Shop Support")

	def test_forward_reads_a_named_address(self):
		frappe.set_user(self.agent)
		try:
			answer = forward_ticket(self.ticket, "Payments Team <pay@example.org>", "Please check")
		finally:
			frappe.set_user("Administrator")
		self.assertEqual(frappe.db.get_value("Ticket", answer["ticket"], "client_email"), "pay@example.org")

	def test_a_russian_channel_quotes_in_russian_in_the_sites_time_zone_from_the_agent(self):
		frappe.db.set_value(
			"Email Channel", self.channel.name, {"quote_language": "ru", "from_name_with_agent": 1}
		)
		signer = agent_user("ru-agent@example.com", signature="Анна Смирнова\n--\nВторая линия поддержки")
		frappe.db.commit()
		self.reply_as(signer, "<p>Готово.</p>")
		letter = self.letters()["client@example.org"]
		text = letter.get_body(("plain",)).get_content().replace("\r\n", "\n")
		html_part = letter.get_body(("html",)).get_content()
		# the client wrote on Thu, 26 Nov 2026 10:00 UTC (test_support.mail); the site's zone decides
		local = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc).astimezone(ZoneInfo(get_system_timezone()))
		attribution = f"26 нояб. 2026 г. в {local:%H:%M}, Client <client@example.org> написал(а):"
		self.assertIn(attribution, text)
		self.assertIn("Анна Смирнова\n--\nВторая линия поддержки", text)
		self.assertIn("Анна Смирнова<br>", html_part)
		self.assertEqual(
			letter["From"].addresses[0].display_name, f"{frappe.utils.get_fullname(signer)} from Shop Support"
		)
