# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import frappe
import requests
from frappe.tests.utils import FrappeTestCase

from usedesk_email.inbound.mta import TRY_LATER
from usedesk_email.testing.desk import (
	SECRET,
	mail,
	make_channel,
	messages_of,
	run_bench,
	served_site,
	set_settings,
)
from usedesk_email.testing.ports import free_port

ENDPOINT = "/api/method/usedesk_email.api.inbound"
CHANNEL_MESSAGE = "Email Channel Message"


class TestInbound(FrappeTestCase):
	"""Internal channels: the endpoint through the real HTTP stack, and the MTA pipe command."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.server = served_site()
		cls.base = cls.server.__enter__()

	@classmethod
	def tearDownClass(cls):
		cls.server.__exit__(None, None, None)
		super().tearDownClass()

	def setUp(self):
		set_settings(inbound_domain="inbound.example.com", max_message_size_mb=25, inbound_rate_limit=600)
		self.channel = make_channel(
			f"internal {frappe.generate_hash(length=6)}",
			incoming_type="Internal",
			main_email="support@shop.example",
			additional_emails="sales@shop.example\nbilling@shop.example",
			from_email="support@shop.example",
			inbound_secret=SECRET,
		)
		self.address = self.channel.internal_address
		frappe.db.commit()

	def post(self, raw: bytes, secret: str | None = SECRET, recipient: str | None = None, **kwargs):
		response = self.send(raw, secret, recipient, **kwargs)
		frappe.db.commit()  # a fresh snapshot: the server wrote from another process
		return response

	def send(self, raw: bytes, secret: str | None = SECRET, recipient: str | None = None, **kwargs):
		headers = {"Content-Type": "message/rfc822", **kwargs.pop("headers", {})}
		if secret is not None:
			headers["X-Usedesk-Secret"] = secret
		params = {"recipient": recipient} if recipient else None
		return requests.post(
			self.base + ENDPOINT, data=raw, headers=headers, params=params, timeout=120, **kwargs
		)

	def ledger_count(self) -> int:
		return frappe.db.count(CHANNEL_MESSAGE, {"channel": self.channel.name})

	def test_forwarded_mail_becomes_a_ticket_and_a_second_delivery_is_a_duplicate(self):
		raw = mail(
			"Broken kettle",
			message_id="k1@client.example",
			to="Support <support@shop.example>, friend@example.net",
			cc="boss@example.org, sales@shop.example",
		)
		first = self.post(raw, recipient=self.address)
		self.assertEqual(first.status_code, 200, first.text)
		answer = first.json()["message"]
		self.assertEqual((answer["outcome"], answer["duplicate"]), ("stored", False))
		ticket = frappe.get_doc("Ticket", answer["ticket"])
		self.assertEqual(ticket.channel, self.channel.name)
		self.assertEqual(ticket.client_email, "client@example.org")
		self.assertEqual(ticket.cc_addresses.splitlines(), ["friend@example.net", "boss@example.org"])
		self.assertEqual(
			frappe.db.get_value("Communication", answer["message"], "reference_name"), str(ticket.name)
		)

		again = self.post(raw, recipient=self.address).json()["message"]
		self.assertEqual(again["outcome"], "duplicate")
		self.assertTrue(again["duplicate"])
		self.assertEqual((again["ticket"], again["message"]), (answer["ticket"], answer["message"]))
		self.assertEqual(len(messages_of(self.channel.name)), 1)

	def test_recipient_comes_from_the_parameter_then_delivery_headers_then_to_and_cc(self):
		cases = {
			"param": ({}, "support@shop.example", self.address),
			"delivered-to": ({"Delivered-To": self.address}, "support@shop.example", None),
			"x-original-to": ({"X-Original-To": self.address.upper()}, "support@shop.example", None),
			"to": ({}, self.address, None),
		}
		for label, (headers, to, recipient) in cases.items():
			raw = mail(f"Route {label}", message_id=f"route-{label}@client.example", to=to, headers=headers)
			answer = self.post(raw, recipient=recipient)
			self.assertEqual(answer.status_code, 200, f"{label}: {answer.text}")
		cc_only = mail("Route cc", message_id="route-cc@client.example", to="x@example.net", cc=self.address)
		self.assertEqual(self.post(cc_only).status_code, 200)
		self.assertEqual(len(messages_of(self.channel.name)), 5)

	def test_additional_address_joins_the_ticket_of_the_main_one_and_own_addresses_are_no_participants(self):
		first = self.post(
			mail("Order 42", message_id="o1@client.example", to="support@shop.example"),
			recipient=self.address,
		).json()
		reply = mail(
			"Re: Order 42",
			message_id="o2@client.example",
			in_reply_to="o1@client.example",
			to="billing@shop.example",
			cc="support@shop.example, " + self.address,
		)
		second = self.post(reply, recipient=self.address).json()
		self.assertEqual(second["message"]["ticket"], first["message"]["ticket"])
		self.assertFalse(frappe.db.get_value("Ticket", first["message"]["ticket"], "cc_addresses"))

	def test_authentication(self):
		raw = mail("Secret check", message_id="auth@client.example")
		missing = self.post(raw, secret=None, recipient=self.address)
		self.assertEqual(missing.status_code, 401, missing.text)
		wrong = self.post(raw, secret=SECRET[:-1] + "0", recipient=self.address)
		self.assertEqual(wrong.status_code, 403, wrong.text)
		self.assertNotIn(SECRET, wrong.text)
		frappe.db.set_value("Email Channel", self.channel.name, "inbound_secret", None)
		frappe.db.delete("__Auth", {"doctype": "Email Channel", "name": self.channel.name})
		frappe.db.commit()
		unset = self.post(raw, secret=SECRET, recipient=self.address)
		self.assertEqual(unset.status_code, 403, "a channel without a secret accepts nothing over HTTP")
		self.assertEqual(self.ledger_count(), 0)

	def test_hostile_bodies_without_the_secret_are_refused_before_parsing(self):
		head = f"From: eve@evil.example\r\nTo: {self.address}\r\nSubject: x\r\n"
		bodies = {
			"nested markup": (head + "Content-Type: text/html\r\n\r\n" + "<blockquote>" * 400_000).encode(),
			"nested mime": (
				head
				+ "".join(
					f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(20_000)
				)
			).encode(),
			"huge headers": (head + "X-Junk: " + "a" * 2_000_000 + "\r\n\r\nbody").encode(),
			"many encoded words": (
				head.replace("Subject: x", "Subject: " + "=?utf-8?B?0J8=?= " * 100_000) + "\r\nhi"
			).encode(),
		}
		for label, raw in bodies.items():
			for secret, status in ((None, 401), ("wrong-" + SECRET, 403)):
				with self.subTest(label, secret=bool(secret)):
					answer = self.post(raw, secret=secret)
					self.assertEqual(answer.status_code, status, answer.text[:200])
		self.assertEqual(self.ledger_count(), 0)
		self.assertFalse(frappe.get_all("Email Channel Failure", filters={"channel": self.channel.name}))

	def test_secret_in_the_query_for_webhooks_that_cannot_send_headers(self):
		raw = mail("Query secret", message_id="query@client.example")
		response = requests.post(
			self.base + ENDPOINT,
			params={"recipient": self.address, "secret": SECRET},
			data=raw,
			headers={"Content-Type": "message/rfc822"},
			timeout=60,
		)
		self.assertEqual(response.status_code, 200, response.text)

	def test_unknown_recipient_and_disabled_channel(self):
		raw = mail("Nobody", message_id="nobody@client.example", to="nobody@inbound.example.com")
		response = self.post(raw)
		self.assertEqual(response.status_code, 404, response.text)
		self.assertIn("nobody@inbound.example.com", response.text)
		frappe.db.set_value("Email Channel", self.channel.name, "enabled", 0)
		frappe.db.commit()
		self.assertEqual(self.post(raw, recipient=self.address).status_code, 404)
		self.assertEqual(self.ledger_count(), 0)

	def test_bad_bodies_are_refused_and_nothing_is_stored(self):
		set_settings(max_message_size_mb=1)
		big = mail("Huge", message_id="huge@client.example", body="x" * (1024 * 1024 + 10))
		for label, body, status in (
			("oversized", big, 413),
			("empty", b"", 400),
			("json", json.dumps({"from": "a@b.example", "subject": "x"}).encode(), 400),
			("png", b"\x89PNG\r\n\x1a\n" + os.urandom(2048), 400),
		):
			response = self.post(body, recipient=self.address)
			self.assertEqual(response.status_code, status, f"{label}: {response.text[:300]}")
		self.assertEqual(self.ledger_count(), 0)
		self.assertFalse(frappe.get_all("Email Channel Failure", filters={"channel": self.channel.name}))

	def test_a_one_megabyte_header(self):
		huge_subject = mail("S" * (1024 * 1024), message_id="bighead@client.example")
		answer = self.post(huge_subject, recipient=self.address)
		self.assertEqual(answer.status_code, 200, answer.text[:300])
		subject = frappe.db.get_value("Ticket", answer.json()["message"]["ticket"], "subject")
		self.assertEqual(len(subject), 998, "cut to the subject field, the message kept whole")

		refused = self.post(
			mail("Big HTTP header", message_id="httphead@client.example"),
			recipient=self.address,
			headers={"X-Padding": "p" * (1024 * 1024)},
		)
		self.assertIn(refused.status_code, (400, 413, 431), refused.status_code)
		self.assertEqual(self.ledger_count(), 1)

	def test_mail_that_cannot_be_stored_is_kept_raw_and_the_answer_says_so(self):
		raw = b"To: " + self.address.encode() + b"\r\nSubject: no sender at all\r\n\r\nWho am I?\r\n"
		first = self.post(raw)
		self.assertEqual(first.status_code, 202, first.text)
		answer = first.json()["message"]
		self.assertEqual(answer["outcome"], "failed")
		failure = frappe.get_doc("Email Channel Failure", answer["failure"])
		stored = frappe.get_doc("File", {"file_url": failure.raw_file}).get_content()
		self.assertEqual(stored.encode() if isinstance(stored, str) else stored, raw)
		again = self.post(raw).json()["message"]
		self.assertEqual(again["failure"], answer["failure"], "a resent failure is the same entry")
		self.assertEqual(frappe.db.get_value("Email Channel Failure", answer["failure"], "attempts"), 2)

	def test_webhook_forms_of_mailgun_and_sendgrid(self):
		mailgun = requests.post(
			self.base + ENDPOINT,
			headers={"X-Usedesk-Secret": SECRET},
			data={
				"recipient": self.address,
				"sender": "client@example.org",
				"body-mime": mail("Via Mailgun", message_id="mg@client.example", body="Привет").decode(),
			},
			timeout=60,
		)
		self.assertEqual(mailgun.status_code, 200, mailgun.text)
		sendgrid = requests.post(
			self.base + ENDPOINT,
			headers={"X-Usedesk-Secret": SECRET},
			data={"envelope": json.dumps({"to": [self.address], "from": "client@example.org"})},
			files={
				"email": ("", mail("Via SendGrid", message_id="sg@client.example", to="support@shop.example"))
			},
			timeout=60,
		)
		self.assertEqual(sendgrid.status_code, 200, sendgrid.text)
		by_id = {m.message_id: m for m in messages_of(self.channel.name)}
		self.assertEqual(set(by_id), {"mg@client.example", "sg@client.example"})
		content = frappe.db.get_value("Communication", by_id["mg@client.example"].name, "content")
		self.assertIn("Привет", content)
		empty_form = requests.post(
			self.base + ENDPOINT,
			headers={"X-Usedesk-Secret": SECRET},
			data={"recipient": self.address},
			timeout=60,
		)
		self.assertEqual(empty_form.status_code, 400)

	def test_concurrent_duplicates_store_one_message(self):
		raw = mail("Sent four times at once", message_id="race@client.example")
		with ThreadPoolExecutor(4) as pool:
			answers = list(pool.map(lambda _: self.send(raw, recipient=self.address), range(4)))
		frappe.db.commit()
		self.assertEqual([a.status_code for a in answers], [200] * 4, [a.text for a in answers])
		outcomes = sorted(a.json()["message"]["outcome"] for a in answers)
		self.assertEqual(outcomes, ["duplicate", "duplicate", "duplicate", "stored"])
		self.assertEqual(len({a.json()["message"]["ticket"] for a in answers}), 1)
		self.assertEqual(len(messages_of(self.channel.name)), 1)

	def test_rate_limit(self):
		frappe.cache.delete_keys("rl:")
		set_settings(inbound_rate_limit=3)
		raw = mail("Flood", message_id="flood@client.example")
		codes = [self.post(raw, recipient=self.address).status_code for _ in range(4)]
		frappe.cache.delete_keys("rl:")
		self.assertEqual(codes, [200, 200, 200, 429])

	def test_only_post(self):
		response = requests.get(self.base + ENDPOINT, params={"recipient": self.address}, timeout=60)
		self.assertEqual(response.status_code, 403, "Frappe refuses a method not in the whitelist's methods")

	def test_changing_the_inbound_domain_moves_the_addresses(self):
		local = self.address.split("@")[0]
		set_settings(inbound_domain="mx.helpdesk.example")
		self.assertEqual(
			frappe.db.get_value("Email Channel", self.channel.name, "internal_address"),
			f"{local}@mx.helpdesk.example",
		)
		with self.assertRaises(frappe.ValidationError):
			set_settings(inbound_domain="not a domain")

	def test_pipe_command(self):
		raw = mail("Via Postfix", message_id="pipe@client.example", to="support@shop.example")
		delivered = run_bench(["usedesk-email", "deliver", "--recipient", self.address], raw)
		self.assertEqual(delivered.returncode, 0, delivered.stderr)
		self.assertIn(b"outcome=stored", delivered.stdout)
		again = run_bench(["usedesk-email", "deliver", "--recipient", self.address], raw)
		self.assertEqual(again.returncode, 0, again.stderr)
		self.assertIn(b"outcome=duplicate", again.stdout)
		self.assertEqual(len(messages_of(self.channel.name)), 1)

		unknown = run_bench(["usedesk-email", "deliver", "--recipient", "in-nobody@inbound.example.com"], raw)
		self.assertEqual(unknown.returncode, 67, unknown.stderr)
		self.assertIn(b"in-nobody@inbound.example.com", unknown.stderr)
		for body in (b"", b'{"not": "mail"}'):
			refused = run_bench(["usedesk-email", "deliver", "--recipient", self.address], body)
			self.assertEqual(refused.returncode, 65, refused.stderr)
		set_settings(max_message_size_mb=1)
		# The pipe takes what the MTA's limit (the cap and room for trace headers) let through.
		within = mail("Just over the cap", message_id="pipeedge@client.example", body="w" * (1024 * 1024))
		self.assertEqual(
			run_bench(["usedesk-email", "deliver", "--recipient", self.address], within).returncode, 0
		)
		big = mail("Too big", message_id="pipebig@client.example", body="y" * (3 * 1024 * 1024))
		too_big = run_bench(["usedesk-email", "deliver", "--recipient", self.address], big)
		self.assertEqual(too_big.returncode, 65, too_big.stderr)
		self.assertIn(b"The message is 3.0 MB; this site accepts at most 1.0 MB.", too_big.stderr)
		self.assertEqual(self.ledger_count(), 2)

	def test_pipe_command_with_the_database_down_asks_the_mta_to_retry(self):
		"""A copy of this site's config pointing at a closed port: the database is unreachable."""
		sites = os.path.abspath(frappe.local.sites_path)
		down = "usedesk-dbdown.localhost"
		os.makedirs(os.path.join(sites, down), exist_ok=True)
		config = {**frappe.get_site_config(), "db_host": "127.0.0.1", "db_port": free_port()}
		with open(os.path.join(sites, down, "site_config.json"), "w") as f:
			json.dump(config, f)
		raw = mail("While the database is down", message_id="dbdown@client.example")
		try:
			result = run_bench(["usedesk-email", "deliver", "--recipient", self.address], raw, site=down)
		finally:
			shutil.rmtree(os.path.join(sites, down))
		self.assertEqual(result.returncode, 75, result.stderr)
		self.assertEqual(result.stderr.strip(), f"usedesk-email deliver: {TRY_LATER}".encode())
		self.assertNotIn(frappe.conf.db_password.encode(), result.stderr)
		self.assertEqual(self.ledger_count(), 0)
		retried = run_bench(["usedesk-email", "deliver", "--recipient", self.address], raw)
		self.assertEqual(retried.returncode, 0, retried.stderr)
		self.assertEqual(len(messages_of(self.channel.name)), 1)
