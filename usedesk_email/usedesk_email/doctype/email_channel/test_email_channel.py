# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.testing.desk import make_channel


class TestEmailChannel(FrappeTestCase):
	def test_external_channel_needs_its_connection_fields(self):
		for missing in ("imap_username", "imap_password", "imap_host"):
			with self.subTest(missing=missing):
				with self.assertRaises(frappe.MandatoryError) as caught:
					make_channel(f"missing {missing}", **{missing: ""})
				label = frappe.get_meta("Email Channel").get_label(missing)
				self.assertIn(label, str(caught.exception))

	def test_internal_channel_needs_main_email(self):
		with self.assertRaises(frappe.MandatoryError):
			make_channel("internal no main", incoming_type="Internal", main_email="")

	def test_from_email_is_always_required(self):
		with self.assertRaises(frappe.MandatoryError):
			make_channel("no from", from_email="")

	def test_common_signature_needs_a_signature(self):
		with self.assertRaises(frappe.MandatoryError):
			make_channel("no signature", use_common_signature=1, signature="<p> </p>")

	def test_smtp_with_own_credentials_needs_a_username(self):
		with self.assertRaises(frappe.MandatoryError):
			make_channel(
				"smtp own creds",
				outgoing_type="External",
				smtp_host="127.0.0.1",
				smtp_use_imap_credentials=0,
				smtp_username="",
			)

	def test_wrong_port_is_refused_with_a_clear_message(self):
		for port in (70000, -1):
			with self.subTest(port=port):
				with self.assertRaises(frappe.ValidationError) as caught:
					make_channel(f"bad port {port}", imap_port=port)
				self.assertIn("65535", str(caught.exception))

	def test_empty_port_gets_the_encryptions_usual_port(self):
		channel = make_channel("port proposal", imap_port=0, imap_encryption="STARTTLS")
		self.assertEqual(channel.imap_port, 143)

	def test_invalid_addresses_are_refused(self):
		with self.assertRaises(frappe.InvalidEmailAddressError):
			make_channel("bad bcc", bcc_email="not an address")
		with self.assertRaises(frappe.InvalidEmailAddressError):
			make_channel(
				"bad additional",
				incoming_type="Internal",
				main_email="help@example.com",
				additional_emails="ok@example.com\nbroken@@example",
			)

	def test_provider_preset_fills_host_port_and_encryption(self):
		channel = make_channel(
			"gmail preset",
			imap_username="support@gmail.com",
			imap_host="",
			imap_port=0,
			outgoing_type="External",
			smtp_host="",
			smtp_port=0,
		)
		self.assertEqual(
			(channel.imap_host, channel.imap_port, channel.imap_encryption), ("imap.gmail.com", 993, "SSL")
		)
		self.assertEqual(channel.smtp_host, "smtp.gmail.com")
		self.assertIn(channel.smtp_encryption, ("SSL", "STARTTLS"))

	def test_internal_address_is_generated_once_and_unguessable(self):
		a = make_channel("internal a", incoming_type="Internal", main_email="help@example.com")
		b = make_channel("internal b", incoming_type="Internal", main_email="help@example.com")
		self.assertNotEqual(a.internal_address, b.internal_address)
		self.assertRegex(a.internal_address, r"^in-[0-9a-f]{20}@")
		first = a.internal_address
		a.from_name = "Changed"
		a.save()
		self.assertEqual(a.internal_address, first)

	def test_password_is_never_returned(self):
		channel = make_channel("secret keeper", imap_password="s3cret-Imap-pass")
		self.assertNotIn(
			"s3cret-Imap-pass", frappe.as_json(frappe.get_doc("Email Channel", channel.name).as_dict())
		)
		self.assertEqual(channel.get_password("imap_password"), "s3cret-Imap-pass")

	def test_mixed_connection_types_are_valid(self):
		channel = make_channel(
			"mixed",
			incoming_type="External",
			outgoing_type="Internal",
		)
		self.assertEqual((channel.incoming_type, channel.outgoing_type), ("External", "Internal"))
