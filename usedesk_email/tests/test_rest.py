# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""REST clients with API keys over Frappe's real HTTP stack: read a conversation, start one."""

import frappe
import requests

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.outbound.delivery import send_communication
from usedesk_email.testing.desk import mail, make_channel, served_site, user_with_role
from usedesk_email.testing.replies import ReplyFixture
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

API = "/api/method/usedesk_email.api."


class TestRestClients(ReplyFixture):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.keys = {
			"agent": user_with_role("rest-agent@usedesk.test", "Support Agent"),
			"nobody": user_with_role("rest-nobody@usedesk.test", None),
		}
		frappe.db.commit()
		cls.server = served_site()
		cls.base = cls.server.__enter__()

	@classmethod
	def tearDownClass(cls):
		cls.server.__exit__(None, None, None)
		super().tearDownClass()

	def call(self, who: str, method: str, http: str = "GET", **params):
		key, secret = self.keys[who]
		response = requests.request(
			http,
			self.base + API + method,
			headers={"Authorization": f"token {key}:{secret}"},
			**({"params": params} if http == "GET" else {"json": params}),
			timeout=120,
		)
		frappe.db.commit()  # a fresh snapshot: the server wrote from another process
		return response

	def restrict_agent_to(self, channel: str) -> None:
		if not frappe.db.exists(
			"User Permission", {"user": "rest-agent@usedesk.test", "allow": "Email Channel"}
		):
			frappe.get_doc(
				{
					"doctype": "User Permission",
					"user": "rest-agent@usedesk.test",
					"allow": "Email Channel",
					"for_value": channel,
				}
			).insert(ignore_permissions=True)
			frappe.db.commit()

	def test_an_agent_reads_the_conversation_and_nothing_of_tickets_they_may_not_read(self):
		answer = self.reply_as(self.agent, "<p>We are on it.</p>")
		response = self.call("agent", "conversation", ticket=self.ticket)
		self.assertEqual(response.status_code, 200, response.text[:300])
		data = response.json()["message"]
		self.assertEqual(data["total"], 2)
		received, sent = data["messages"]
		self.assertEqual((received["direction"], sent["direction"]), ("received", "sent"))
		self.assertEqual(received["sender"], "client@example.org")
		self.assertIn("My kettle is broken.", received["text"])
		self.assertEqual(sent["name"], answer["communication"])
		self.assertEqual(
			sorted(letter["recipient"] for letter in sent["letters"]),
			["archive@shop.example", "boss@example.org", "client@example.org"],
		)
		self.assertTrue(all(letter["status"] == "Sent" for letter in sent["letters"]))
		self.assertNotIn("smtp", response.text.lower().replace("smtp_", ""), "no channel configuration")
		self.assertNotIn("Secret", response.text)
		paged = self.call("agent", "conversation", ticket=self.ticket, start=1, limit=1).json()["message"]
		self.assertEqual([m["name"] for m in paged["messages"]], [answer["communication"]])

		other = make_channel(f"rest other {frappe.generate_hash(length=6)}")
		hidden = ingest_raw(
			other, mail("Other channel", message_id=f"{other.name}@client.example"), "t"
		).ticket
		self.restrict_agent_to(self.channel.name)
		try:
			self.assertEqual(self.call("agent", "conversation", ticket=hidden).status_code, 403)
			self.assertEqual(self.call("agent", "conversation", ticket=self.ticket).status_code, 200)
		finally:
			for name in frappe.get_all("User Permission", {"user": "rest-agent@usedesk.test"}, pluck="name"):
				frappe.delete_doc("User Permission", name, ignore_permissions=True)  # clears its cache
			frappe.db.commit()
		self.assertEqual(self.call("nobody", "conversation", ticket=self.ticket).status_code, 403)
		self.assertEqual(
			requests.get(self.base + API + "conversation", params={"ticket": self.ticket}).status_code, 403
		)

	def test_create_ticket_sends_one_first_letter_and_the_answer_threads_back(self):
		response = self.call(
			"agent",
			"create_ticket",
			http="POST",
			channel=self.channel.name,
			to="New Client <newclient@example.org>",
			subject="Your order 1234",
			content="<p>Your order is ready.</p>",
		)
		self.assertEqual(response.status_code, 200, response.text[:500])
		answer = response.json()["message"]
		send_communication(answer["communication"])
		letters = self.letters()
		self.assertEqual(sorted(letters), ["archive@shop.example", "newclient@example.org"])
		letter = letters["newclient@example.org"]
		self.assertEqual(letter["Subject"], f"Your order 1234 [UD#{answer['ticket']}]")
		self.assertIsNone(letter["In-Reply-To"])
		ticket = frappe.get_doc("Ticket", answer["ticket"])
		self.assertEqual((ticket.client_email, ticket.status), ("newclient@example.org", "Replied"))

		message_id = frappe.db.get_value(
			CHANNEL_MESSAGE,
			{"communication": answer["communication"], "recipient": "newclient@example.org"},
			"message_id",
		)
		reply = mail(
			"Re: Your order 1234",
			sender="newclient@example.org",
			message_id="answer@newclient.example",
			in_reply_to=message_id,
			to="help@shop.example",
		)
		self.assertEqual(ingest_raw(self.channel, reply, "t").ticket, answer["ticket"])

	def test_create_ticket_refuses_bad_input_clearly(self):
		for label, params, status in (
			("bad address", {"to": "not an address"}, 417),
			("two addresses", {"to": "a@example.org, b@example.org"}, 417),
			("no subject", {"subject": "  "}, 417),
			("unknown channel", {"channel": "no such channel"}, 404),
		):
			with self.subTest(label):
				full = {
					"channel": self.channel.name,
					"to": "c@example.org",
					"subject": "S",
					"content": "<p>x</p>",
					**params,
				}
				response = self.call("agent", "create_ticket", http="POST", **full)
				self.assertEqual(response.status_code, status, response.text[:300])
		self.assertEqual(
			self.call(
				"nobody",
				"create_ticket",
				http="POST",
				channel=self.channel.name,
				to="c@example.org",
				subject="S",
				content="x",
			).status_code,
			403,
		)

	def test_channel_names_for_the_ticket_lists_filter(self):
		names = self.call("agent", "channel_names", txt=self.channel.name)
		self.assertEqual(names.status_code, 200, names.text[:300])
		self.assertIn([self.channel.name], names.json()["message"])
		self.assertNotIn("imap", names.text.lower())
		self.assertEqual(self.call("nobody", "channel_names", txt="").status_code, 403)
