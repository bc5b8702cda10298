# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import base64
import binascii
import json
import socket
import threading

import frappe
from frappe.tests.test_api import FrappeAPITestCase

from usedesk_email.channel.config import imap_settings, smtp_settings
from usedesk_email.channel.connection_check import check_channel
from usedesk_email.patches import fixed_password_mask
from usedesk_email.testing.desk import make_channel, user_with_role
from usedesk_email.testing.ports import HOST
from usedesk_email.usedesk_email.doctype.email_channel.email_channel import PASSWORD_MASK

PASSWORD = "stored-Imap-Secret-4471"
SMTP_PASSWORD = "stored-Smtp-Secret-9902"
TYPED = "typed-Secret-1203"


class RecordingServer:
	"""A plain-text IMAP or SMTP server on 127.0.0.1 that refuses every login and keeps what it heard.

	Base64 lines (SMTP AUTH) are kept decoded too, so a password cannot hide in an encoding.
	"""

	def __init__(self, protocol: str):
		self.protocol = protocol
		self.heard: list[str] = []
		self.sock = socket.create_server((HOST, 0))
		self.port = self.sock.getsockname()[1]
		self.thread = threading.Thread(target=self.serve, daemon=True)
		self.thread.start()

	def serve(self) -> None:
		while True:
			try:
				conn, _ = self.sock.accept()
			except OSError:
				return
			with conn:
				conn.settimeout(10)
				try:
					self.talk(conn.makefile("rwb"))
				except OSError:
					pass

	def talk(self, f) -> None:
		f.write(b"* OK ready\r\n" if self.protocol == "imap" else b"220 ready ESMTP\r\n")
		f.flush()
		for raw in f:
			line = raw.decode("utf-8", "replace").rstrip("\r\n")
			self.heard.append(line)
			for token in line.split():
				try:
					self.heard.append(base64.b64decode(token, validate=True).decode("utf-8", "replace"))
				except (binascii.Error, ValueError):
					pass
			reply = self.answer(line)
			f.write(reply.encode())
			f.flush()
			if reply.startswith(("221", "* BYE")):
				return

	def answer(self, line: str) -> str:
		if self.protocol == "imap":
			tag, _, command = line.partition(" ")
			if command.upper().startswith("CAPABILITY"):
				return f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
			if command.upper().startswith("LOGOUT"):
				return f"* BYE\r\n{tag} OK bye\r\n"
			return f"{tag} NO [AUTHENTICATIONFAILED] refused\r\n"
		command = line.upper()
		if command.startswith(("EHLO", "HELO")):
			return "250-hello\r\n250 AUTH PLAIN LOGIN\r\n"
		if command.startswith("AUTH LOGIN"):
			return "334 VXNlcm5hbWU6\r\n"
		if command.startswith("QUIT"):
			return "221 bye\r\n"
		if command.startswith("AUTH"):
			return "535 5.7.8 refused\r\n"
		return "334 UGFzc3dvcmQ6\r\n" if len(self.heard) % 2 else "535 5.7.8 refused\r\n"

	def close(self) -> None:
		self.sock.close()

	def text(self) -> str:
		return "\n".join(self.heard)


class TestSecretBinding(FrappeAPITestCase):
	"""A stored password or token only goes to the host, port and username it was saved for."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.imap = RecordingServer("imap")
		cls.smtp = RecordingServer("smtp")
		cls.closed_port = free_closed_port()
		cls.key, cls.secret = user_with_role("binding-manager@usedesk.test", "Support Manager")
		frappe.db.commit()

	@classmethod
	def tearDownClass(cls):
		cls.imap.close()
		cls.smtp.close()
		super().tearDownClass()

	def setUp(self):
		self.imap.heard.clear()
		self.smtp.heard.clear()
		self.channel = make_channel(
			f"binding {frappe.generate_hash(length=6)}",
			imap_password=PASSWORD,
			imap_host=HOST,
			imap_port=self.closed_port,
			imap_encryption="None",
			outgoing_type="External",
			smtp_host=HOST,
			smtp_port=self.closed_port,
			smtp_encryption="None",
			smtp_username="sender@example.com",
			smtp_password=SMTP_PASSWORD,
			smtp_use_imap_credentials=0,
		)
		frappe.db.commit()

	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.delete_doc("Email Channel", self.channel.name, force=True)
		frappe.db.commit()

	def run_test_connection(self, **changes):
		"""The desk's Test Connection on the form's unsaved changes, over REST as a Support Manager."""
		doc = {
			**frappe.get_doc("Email Channel", self.channel.name).as_dict(convert_dates_to_str=True),
			**changes,
		}
		return self.post(
			self.method("run_doc_method"),
			{"docs": json.dumps(doc), "method": "test_connection"},
			headers={"Authorization": f"token {self.key}:{self.secret}"},
		)

	def assert_nothing_sent(self):
		for server in (self.imap, self.smtp):
			self.assertNotIn(PASSWORD, server.text())
			self.assertNotIn(SMTP_PASSWORD, server.text())

	def test_manager_side_door_sends_no_stored_imap_password(self):
		response = self.run_test_connection(imap_port=self.imap.port, outgoing_type="Internal")
		self.assertNotEqual(response.status_code, 200)
		self.assertIn("type the password again", response.get_data(as_text=True))
		self.assertIn("IMAP Port", response.get_data(as_text=True))
		self.assert_nothing_sent()
		self.assertEqual(self.imap.heard, [], "no login attempt at all")

	def test_changed_username_alone_is_refused(self):
		response = self.run_test_connection(imap_username="someone-else", outgoing_type="Internal")
		self.assertNotEqual(response.status_code, 200)
		self.assertIn("type the password again", response.get_data(as_text=True))

	def test_typed_password_goes_where_the_form_says(self):
		"""The listener hears a typed password: the refusal above is not the listener's deafness."""
		response = self.run_test_connection(
			imap_port=self.imap.port, imap_password=TYPED, outgoing_type="Internal"
		)
		self.assertEqual(response.status_code, 200, response.get_data(as_text=True))
		self.assertIn(TYPED, self.imap.text())
		# (the form's own document comes back to it as sent; the check's message is redacted)
		self.assertNotIn(TYPED, json.dumps(response.json["message"]))
		self.assert_nothing_sent()

	def test_saved_host_gets_the_stored_password(self):
		self.channel.imap_port = self.imap.port
		self.channel.imap_password = PASSWORD
		self.channel.outgoing_type = "Internal"
		self.channel.save(ignore_permissions=True)
		frappe.db.commit()
		self.assertEqual(self.channel.imap_password, PASSWORD_MASK)
		self.assertFalse(check_channel(frappe.get_doc("Email Channel", self.channel.name))["ok"])
		self.assertIn(PASSWORD, self.imap.text())

	def test_smtp_password_and_imap_credentials_for_smtp(self):
		response = self.run_test_connection(incoming_type="Internal", smtp_port=self.smtp.port)
		self.assertNotEqual(response.status_code, 200)
		self.assertIn("SMTP Port", response.get_data(as_text=True))
		response = self.run_test_connection(incoming_type="Internal", smtp_host="localhost")
		self.assertNotEqual(response.status_code, 200)
		# the IMAP password was never saved for the SMTP server: switching it on needs it typed
		response = self.run_test_connection(smtp_use_imap_credentials=1, imap_port=self.closed_port)
		self.assertNotEqual(response.status_code, 200)
		self.assert_nothing_sent()
		self.assertEqual(self.smtp.heard, [])

	def test_unsaved_copy_under_the_saved_name(self):
		copy = frappe.get_doc(
			{
				**frappe.get_doc("Email Channel", self.channel.name).as_dict(),
				"__islocal": 1,
				"imap_port": self.imap.port,
				"smtp_port": self.smtp.port,
			}
		)
		frappe.set_user("binding-manager@usedesk.test")
		with self.assertRaises(frappe.ValidationError):
			copy.test_connection()
		with self.assertRaises(frappe.ValidationError):
			smtp_settings(copy, None)
		self.assert_nothing_sent()

	def test_save_with_a_changed_server_needs_the_password(self):
		doc = frappe.get_doc("Email Channel", self.channel.name)
		doc.imap_host = "imap.elsewhere.test"
		with self.assertRaises(frappe.ValidationError) as refused:
			doc.save(ignore_permissions=True)
		self.assertIn("IMAP Host", str(refused.exception))
		doc.reload()
		doc.smtp_username = "other@example.com"
		self.assertRaises(frappe.ValidationError, doc.save, ignore_permissions=True)
		doc.reload()
		doc.imap_host, doc.imap_password = "imap.elsewhere.test", "new-Imap-Secret"
		doc.save(ignore_permissions=True)
		self.assertEqual(doc.get_password("imap_password"), "new-Imap-Secret")
		self.assertEqual(
			imap_settings(frappe.get_doc("Email Channel", doc.name), None).password, "new-Imap-Secret"
		)

	def test_passwords_have_one_mask_whatever_their_length(self):
		doc = frappe.get_doc("Email Channel", self.channel.name)
		doc.imap_password = "x" * 31
		doc.save(ignore_permissions=True)
		row = frappe.db.get_value("Email Channel", doc.name, ["imap_password", "smtp_password"], as_dict=True)
		self.assertEqual(row, {"imap_password": PASSWORD_MASK, "smtp_password": PASSWORD_MASK})
		self.assertEqual(doc.get_password("imap_password"), "x" * 31)

	def test_patch_remasks_rows_and_history_of_the_old_shape(self):
		name = self.channel.name
		frappe.db.set_value(
			"Email Channel",
			name,
			{"imap_password": "*" * len(PASSWORD), "smtp_password": "*" * len(SMTP_PASSWORD)},
			update_modified=False,
		)
		version = frappe.get_doc(
			{
				"doctype": "Version",
				"ref_doctype": "Email Channel",
				"docname": name,
				"data": frappe.as_json(
					{"changed": [["imap_password", "*****", "*" * 23], ["imap_port", 1, 2]]}
				),
			}
		).insert(ignore_permissions=True)
		fixed_password_mask.execute()
		fixed_password_mask.execute()  # twice: nothing changes the second time
		row = frappe.db.get_value("Email Channel", name, ["imap_password", "smtp_password"], as_dict=True)
		self.assertEqual(row, {"imap_password": PASSWORD_MASK, "smtp_password": PASSWORD_MASK})
		data = json.loads(frappe.db.get_value("Version", version.name, "data"))
		self.assertEqual(
			data["changed"], [["imap_password", PASSWORD_MASK, PASSWORD_MASK], ["imap_port", 1, 2]]
		)
		self.assertEqual(frappe.get_doc("Email Channel", name).get_password("imap_password"), PASSWORD)


def free_closed_port() -> int:
	"""A port nobody listens on: a saved channel's connection fails at once."""
	with socket.socket() as s:
		s.bind((HOST, 0))
		return s.getsockname()[1]
