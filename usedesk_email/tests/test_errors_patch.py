# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.patches import channel_errors_as_text
from usedesk_email.testing.desk import make_channel


class TestErrorsPatch(FrappeTestCase):
	"""Last Error written raw before the change becomes text; plain errors stay as they are."""

	def test_raw_errors_become_text(self):
		run = frappe.generate_hash(length=6)
		raw = "IMAP 127.0.0.1:993: the server refused the login (<img src=x onerror=alert(1)>)"
		errors = {
			make_channel(f"errors {run} raw").name: raw,
			make_channel(f"errors {run} half").name: "answered > nothing",
			make_channel(f"errors {run} plain").name: "IMAP 127.0.0.1:993: the connection was refused",
		}
		for name, error in errors.items():  # as the poll wrote them before
			frappe.db.set_value("Email Channel", name, "last_error", error, update_modified=False)
		modified = {name: frappe.db.get_value("Email Channel", name, "modified") for name in errors}

		channel_errors_as_text.execute()
		channel_errors_as_text.execute()  # a second run changes nothing more

		stored = {name: frappe.db.get_value("Email Channel", name, "last_error") for name in errors}
		self.assertEqual(
			list(stored.values()),
			[
				"IMAP 127.0.0.1:993: the server refused the login (&lt;img src=x onerror=alert(1)&gt;)",
				"answered &gt; nothing",
				"IMAP 127.0.0.1:993: the connection was refused",
			],
		)
		self.assertEqual({n: frappe.db.get_value("Email Channel", n, "modified") for n in errors}, modified)
