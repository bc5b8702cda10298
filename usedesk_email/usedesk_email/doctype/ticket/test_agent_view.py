# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import json
import tempfile
import time

import frappe
import requests
from frappe.tests.test_api import FrappeAPITestCase
from frappe.tests.utils import FrappeTestCase

from usedesk_email.testing.browser import chromium
from usedesk_email.testing.desk import desk_user, make_channel, served_site, user_with_role

# values only the channel's configuration holds: none may reach an agent
SECRET_HOST = "imap.agent-must-not-see.test"
SECRET_USER = "mailbox-login-7731@example.com"
AGENT_PASSWORD = "Agent-Desk-Pass-5512!"


def channel_with_ticket(name: str, forward: int = 1) -> tuple:
	channel = make_channel(
		name, imap_host=SECRET_HOST, imap_username=SECRET_USER, forward_as_new_ticket=forward
	)
	ticket = frappe.get_doc(
		{
			"doctype": "Ticket",
			"subject": "Agent view",
			"channel": channel.name,
			"client_email": "c@example.org",
		}
	).insert(ignore_permissions=True)
	return channel, ticket


class TestAgentView(FrappeAPITestCase):
	"""A Support Agent works the ticket; the channel's configuration stays out of every query."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.channel, cls.ticket = channel_with_ticket("agent view channel")
		cls.keys = {
			"agent": user_with_role("view-agent@usedesk.test", "Support Agent"),
			"manager": user_with_role("view-manager@usedesk.test", "Support Manager"),
			"nobody": user_with_role("view-nobody@usedesk.test", None),
		}
		frappe.db.commit()

	def auth(self, who: str) -> dict:
		key, secret = self.keys[who]
		return {"Authorization": f"token {key}:{secret}"}

	def assert_no_channel_field(self, response):
		text = response.get_data(as_text=True)
		for value in (SECRET_HOST, SECRET_USER, self.channel.internal_address, "*" * len("imap-pass")):
			self.assertNotIn(value, text, response.request.url if hasattr(response, "request") else "")

	def test_rest_and_report_queries_show_no_channel_field(self):
		ch = self.channel.name
		calls = [
			("GET", self.resource("Email Channel"), {"fields": json.dumps(["*"])}),
			("GET", self.resource("Email Channel", ch), {}),
			("GET", self.method("frappe.client.get_list"), {"doctype": "Email Channel", "fields": '["*"]'}),
			("GET", self.method("frappe.client.get"), {"doctype": "Email Channel", "name": ch}),
			(
				"GET",
				self.method("frappe.client.get_value"),
				{"doctype": "Email Channel", "filters": ch, "fieldname": '["imap_host","internal_address"]'},
			),
			(
				"GET",
				self.method("frappe.client.get_count"),
				{"doctype": "Email Channel", "filters": json.dumps({"imap_host": SECRET_HOST})},
			),
			(
				"POST",
				self.method("frappe.desk.reportview.get_count"),
				{"doctype": "Email Channel", "filters": json.dumps({"imap_host": SECRET_HOST})},
			),
			(
				"POST",
				self.method("frappe.desk.listview.get_group_by_count"),
				{"doctype": "Email Channel", "current_filters": "{}", "field": "imap_host"},
			),
			(
				"POST",
				self.method("frappe.desk.reportview.get"),
				{
					"doctype": "Email Channel",
					"fields": '["name","imap_host","imap_username","internal_address"]',
				},
			),
			(
				"POST",
				self.method("frappe.desk.reportview.get"),
				{
					"doctype": "Ticket",
					"fields": json.dumps(
						[
							"`tabTicket`.`name`",
							"`tabEmail Channel`.`imap_host`",
							"`tabEmail Channel`.`imap_password`",
						]
					),
				},
			),
			(
				"GET",
				self.method("frappe.client.get_list"),
				{"doctype": "Ticket", "fields": '["name","channel.imap_host","channel.internal_address"]'},
			),
			(
				"POST",
				self.method("frappe.desk.search.search_link"),
				{"doctype": "Email Channel", "txt": "", "searchfield": "imap_host"},
			),
			(
				"POST",
				self.method("frappe.desk.reportview.get_stats"),
				{"stats": '["imap_host"]', "doctype": "Email Channel"},
			),
			("GET", self.method("frappe.desk.form.load.getdoc"), {"doctype": "Email Channel", "name": ch}),
		]
		for verb, path, params in calls:
			with self.subTest(path=path, params=params):
				call = self.get if verb == "GET" else self.post
				response = call(path, params, headers=self.auth("agent"))
				self.assert_no_channel_field(response)
				if "Email Channel" == params.get("doctype") or path.endswith(ch.replace(" ", "%20")):
					self.assertIn(response.status_code, (403, 417), response.get_data(as_text=True)[:300])

	def test_agent_ticket_still_shows_the_channel_name(self):
		response = self.get(self.resource("Ticket", str(self.ticket.name)), headers=self.auth("agent"))
		self.assertEqual(response.status_code, 200)
		self.assertEqual(response.json["data"]["channel"], self.channel.name)
		self.assert_no_channel_field(response)

	def test_ticket_context_for_agents_and_managers(self):
		for who in ("agent", "manager"):
			with self.subTest(who=who):
				response = self.get(
					self.method("usedesk_email.api.ticket_context"),
					{"ticket": self.ticket.name},
					headers=self.auth(who),
				)
				self.assertEqual(response.status_code, 200, response.get_data(as_text=True))
				context = response.json["message"]
				self.assertEqual(set(context), {"channel", "can_forward", "can_send", "reason"})
				self.assertEqual(context["channel"], self.channel.name)
				self.assertTrue(context["can_forward"])
				self.assertIsInstance(context["can_send"], bool)
				self.assert_no_channel_field(response)

	def test_ticket_context_refused_without_access_to_the_ticket(self):
		response = self.get(
			self.method("usedesk_email.api.ticket_context"),
			{"ticket": self.ticket.name},
			headers=self.auth("nobody"),
		)
		self.assertEqual(response.status_code, 403)
		self.assertNotIn(self.channel.name, response.get_data(as_text=True))
		response = self.get(self.method("usedesk_email.api.ticket_context"), {"ticket": self.ticket.name})
		self.assertEqual(response.status_code, 403)

	def test_forwarding_off_is_said_too(self):
		_channel, ticket = channel_with_ticket("agent view no forward", forward=0)
		frappe.db.commit()
		response = self.get(
			self.method("usedesk_email.api.ticket_context"),
			{"ticket": ticket.name},
			headers=self.auth("agent"),
		)
		self.assertFalse(response.json["message"]["can_forward"])

	def test_managers_read_the_letters_agents_do_not(self):
		frappe.get_doc(
			{
				"doctype": "Email Channel Message",
				"channel": self.channel.name,
				"direction": "Outgoing",
				"dedupe_key": frappe.generate_hash(),
				"message_key": frappe.generate_hash(),
				"ticket": self.ticket.name,
				"recipient": "c@example.org",
				"status": "Sent",
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		params = {"filters": json.dumps({"ticket": self.ticket.name}), "fields": '["name","status"]'}
		response = self.get(self.resource("Email Channel Message"), params, headers=self.auth("manager"))
		self.assertEqual(response.status_code, 200)
		self.assertEqual([r["status"] for r in response.json["data"]], ["Sent"])
		response = self.get(self.resource("Email Channel Message"), params, headers=self.auth("agent"))
		self.assertEqual(response.status_code, 403)
		frappe.set_user("view-manager@usedesk.test")
		try:
			self.assertIn("Email Channel Message", frappe.get_user().get_can_read())
		finally:
			frappe.set_user("Administrator")


class TestAgentTicketPage(FrappeTestCase):
	"""The agent's ticket page in headless Chromium: no permission popup, Forward offered."""

	def test_agent_ticket_page(self):
		_channel, ticket = channel_with_ticket("agent page channel")
		user = desk_user("page-agent@usedesk.test", "Support Agent")
		user.new_password = AGENT_PASSWORD
		user.save(ignore_permissions=True)
		frappe.db.commit()
		with served_site() as base:
			login = requests.post(f"{base}/api/method/login", data={"usr": user.name, "pwd": AGENT_PASSWORD})
			self.assertEqual(login.status_code, 200, login.text)
			driver = chromium(self.addCleanup)
			driver.get(f"{base}/login")
			driver.add_cookie({"name": "sid", "value": login.cookies["sid"], "path": "/"})
			driver.get(f"{base}/app/ticket/{ticket.name}")
			buttons, dialogs = self.wait_for_form(driver)
			driver.save_screenshot(f"{tempfile.gettempdir()}/usedesk-agent-ticket.png")
		self.assertIn("Forward message", buttons)
		self.assertIn("Reply", buttons)
		self.assertNotIn("Letters", buttons, "the letters are for managers")
		self.assertEqual(dialogs, [], "no popup (No permission for Email Channel)")

	def wait_for_form(self, driver, timeout: float = 60) -> tuple[list[str], list[str]]:
		"""Button labels of the form once Forward appears (or the time is up), and visible dialogs."""
		script = """
			const buttons = [...document.querySelectorAll('.page-actions button, .page-actions .btn')]
				.map((b) => b.innerText.trim()).filter(Boolean);
			const dialogs = [...document.querySelectorAll('.modal.show')].map((m) => m.innerText.trim());
			return [buttons, dialogs, !!(window.cur_frm && cur_frm.doc && cur_frm.doc.name)];
		"""
		deadline = time.monotonic() + timeout
		buttons, dialogs = [], []
		while time.monotonic() < deadline:
			buttons, dialogs, loaded = driver.execute_script(script)
			if loaded and "Forward message" in buttons:
				time.sleep(2)  # a popup from a later request would show by now
				buttons, dialogs, _ = driver.execute_script(script)
				break
			time.sleep(0.5)
		return buttons, dialogs
