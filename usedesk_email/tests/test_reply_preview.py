# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The Reply dialog's preview of what a reply carries under the message: the same signature and
quote the letters get, as HTML that is safe in the desk."""

import html
import re

import frappe
import requests

from usedesk_email.api import reply_preview
from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.testing.desk import served_site, user_with_role
from usedesk_email.testing.replies import ReplyFixture

HOSTILE_NAME = '<img src=x onerror=alert(1)> "Eve & Co"'
HOSTILE_BODY = (
	"<p>Broken again</p><script>alert(2)</script>"
	'<img src="https://tracker.example/pixel.gif" alt="pixel">'
	'<a href="javascript:alert(3)" onclick="alert(4)">click</a>'
	'<div style="position:fixed;top:0">cover</div>'
)


def hostile_mail(token: str) -> bytes:
	return (
		f'From: "{HOSTILE_NAME.replace(chr(34), chr(92) + chr(34))}" <eve@client.example>\r\n'
		f"To: help@shop.example\r\nSubject: Kettle {token}\r\nMessage-ID: <{token}@client.example>\r\n"
		"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
		f'Content-Type: text/html; charset="utf-8"\r\n\r\n<html><body>{HOSTILE_BODY}</body></html>\r\n'
	).encode()


class TestReplyPreview(ReplyFixture):
	def preview_as(self, user: str, ticket: str | None = None) -> dict:
		frappe.set_user(user)
		try:
			return reply_preview(ticket or self.ticket)
		finally:
			frappe.set_user("Administrator")

	def test_the_preview_shows_the_signature_and_quote_the_letters_carry(self):
		preview = self.preview_as(self.agent)
		self.assertTrue(preview["quoting"])
		self.assertIn("Anna Smith, second line support", preview["signature"])
		self.assertNotIn("The Shop support team", preview["signature"], "the personal signature wins")
		self.assertIn("My kettle is broken.", preview["quote"])

		self.reply_as(self.agent, "<p>A new one is on its way.</p>")
		text = self.letters()["client@example.org"].get_body(("plain",)).get_content()
		attribution = next(line for line in text.splitlines() if line.endswith("wrote:"))
		self.assertIn(html.escape(attribution, quote=False), preview["quote"], "the letter's own line")
		own = self.own_part()
		self.assertIn(preview["signature"], own, "the same signature, as written")

		second = self.preview_as(self.agent)
		self.assertIn("A new one is on its way.", second["quote"], "the next reply quotes the first")

	def test_common_signature_and_the_channels_quote_settings(self):
		self.assertIn("The Shop support team", self.preview_as(self.plain_agent)["signature"])
		frappe.db.set_value("Email Channel", self.channel.name, "use_common_signature", 0)
		self.assertEqual(self.preview_as(self.plain_agent)["signature"], "")

		frappe.db.set_value("Email Channel", self.channel.name, "display_quote", 0)
		preview = self.preview_as(self.plain_agent)
		self.assertEqual((preview["quoting"], preview["quote"]), (False, ""))
		frappe.db.set_value("Email Channel", self.channel.name, {"display_quote": 1, "do_not_quote": 1})
		preview = self.preview_as(self.plain_agent)
		self.assertEqual((preview["quoting"], preview["quote"]), (False, ""))
		frappe.db.set_value("Email Channel", self.channel.name, "do_not_quote", 0)
		self.assertIn("My kettle is broken.", self.preview_as(self.plain_agent)["quote"])

	def test_mail_derived_values_are_escaped_and_images_wait(self):
		ticket = str(ingest_raw(self.channel, hostile_mail("hostile1"), "test").ticket)
		frappe.db.commit()
		quote = self.preview_as(self.agent, ticket)["quote"]
		self.assertIn("Broken again", quote)
		self.assertIn("&lt;img src=x onerror=alert(1)&gt;", quote, "the sender's name, as text")
		self.assertIn("Eve &amp; Co", quote)
		for active in (
			"<script",
			"alert(2)",
			"javascript:",
			"onclick",
			"onerror=alert(1)>",
			"position:fixed",
		):
			self.assertNotIn(active, quote.replace("&lt;img src=x onerror=alert(1)&gt;", ""))
		images = re.findall(r"<img[^>]*>", quote)
		self.assertEqual(len(images), 1, quote)
		self.assertIn('data-remote-src="https://tracker.example/pixel.gif"', images[0])
		self.assertNotIn(" src=", images[0], "a remote image never loads by itself in the desk")

	def test_a_signature_with_markup_is_sanitised_for_the_desk(self):
		frappe.db.set_value(
			"User",
			self.plain_agent,
			"email_signature",
			'<p onclick="alert(5)">Bob</p><script>alert(6)</script>',
		)
		self.addCleanup(frappe.db.set_value, "User", self.plain_agent, "email_signature", "")
		signature = self.preview_as(self.plain_agent)["signature"]
		self.assertEqual(signature, "<p>Bob</p>")

	def test_over_http_for_an_agent_and_refused_to_others(self):
		agent = user_with_role("preview-agent@usedesk.test", "Support Agent")
		nobody = user_with_role("preview-nobody@usedesk.test", None)
		frappe.db.commit()
		url = "/api/method/usedesk_email.api.reply_preview"
		with served_site() as base:
			answers = {
				who: requests.get(
					f"{base}{url}",
					params={"ticket": self.ticket},
					headers={"Authorization": f"token {k}:{s}"},
				)
				for who, (k, s) in (("agent", agent), ("nobody", nobody))
			}
			post = requests.post(
				f"{base}{url}",
				data={"ticket": self.ticket},
				headers={"Authorization": "token {}:{}".format(*agent)},
			)
		self.assertEqual(answers["agent"].status_code, 200, answers["agent"].text)
		self.assertIn("My kettle is broken.", answers["agent"].json()["message"]["quote"])
		self.assertEqual(answers["nobody"].status_code, 403)
		self.assertNotIn("kettle", answers["nobody"].text)
		self.assertEqual(post.status_code, 403, "a read: GET only")
