# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe.tests.test_api import FrappeAPITestCase

from usedesk_email.testing.desk import make_channel, user_with_role

PASSWORD = "imap-Secret-7731"


class TestPermissions(FrappeAPITestCase):
	"""Managers configure channels, agents work tickets, guests see nothing: desk and REST."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.channel = make_channel("permissions channel", imap_password=PASSWORD).name
		cls.ticket = (
			frappe.get_doc(
				{
					"doctype": "Ticket",
					"subject": "Permission check",
					"channel": cls.channel,
					"client_email": "c@example.org",
				}
			)
			.insert(ignore_permissions=True)
			.name
		)
		cls.keys = {
			"agent": user_with_role("agent@usedesk.test", "Support Agent"),
			"manager": user_with_role("manager@usedesk.test", "Support Manager"),
			"nobody": user_with_role("nobody@usedesk.test", None),
		}
		frappe.db.commit()

	def auth(self, who: str) -> dict:
		key, secret = self.keys[who]
		return {"Authorization": f"token {key}:{secret}"}

	def test_desk_permissions_by_role(self):
		cases = {
			"agent@usedesk.test": {
				("Ticket", "read"): True,
				("Ticket", "write"): True,
				("Ticket", "delete"): False,
				("Email Channel", "read"): False,
				("Email Channel", "write"): False,
				("Email Channel Failure", "read"): False,
			},
			"manager@usedesk.test": {
				("Ticket", "read"): True,
				("Ticket", "delete"): True,
				("Email Channel", "write"): True,
				("Email Channel Failure", "write"): True,
			},
			"Guest": {("Ticket", "read"): False, ("Email Channel", "read"): False},
			"nobody@usedesk.test": {("Ticket", "read"): False, ("Email Channel", "read"): False},
		}
		for user, expectations in cases.items():
			frappe.set_user(user)
			try:
				for (doctype, ptype), allowed in expectations.items():
					with self.subTest(user=user, doctype=doctype, ptype=ptype):
						self.assertEqual(bool(frappe.has_permission(doctype, ptype)), allowed)
			finally:
				frappe.set_user("Administrator")

	def test_rest_agent_reads_tickets_but_not_channels(self):
		self.assertEqual(self.get(self.resource("Ticket"), headers=self.auth("agent")).status_code, 200)
		response = self.get(self.resource("Ticket", str(self.ticket)), headers=self.auth("agent"))
		self.assertEqual(response.status_code, 200)
		self.assertEqual(response.json["data"]["subject"], "Permission check")
		response = self.get(self.resource("Email Channel", self.channel), headers=self.auth("agent"))
		self.assertEqual(response.status_code, 403)

	def test_rest_manager_reads_channels_without_passwords(self):
		response = self.get(self.resource("Email Channel", self.channel), headers=self.auth("manager"))
		self.assertEqual(response.status_code, 200)
		self.assertEqual(response.json["data"]["channel_name"], self.channel)
		self.assertNotIn(PASSWORD, response.get_data(as_text=True))

	def test_rest_guest_and_role_less_users_see_nothing(self):
		self.assertEqual(self.get(self.resource("Ticket", str(self.ticket))).status_code, 403)
		self.assertEqual(self.get(self.resource("Email Channel", self.channel)).status_code, 403)
		response = self.get(self.resource("Ticket", str(self.ticket)), headers=self.auth("nobody"))
		self.assertEqual(response.status_code, 403)

	def test_rest_test_connection_is_for_managers_only(self):
		path = self.method("run_doc_method")
		body = {"dt": "Email Channel", "dn": self.channel, "method": "test_connection"}
		self.assertEqual(self.post(path, body, headers=self.auth("agent")).status_code, 403)
