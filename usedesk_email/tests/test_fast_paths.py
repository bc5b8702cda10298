# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

from unittest.mock import patch

import frappe
from frappe.model.document import Document
from frappe.tests.utils import FrappeTestCase

from usedesk_email.db import COMMUNICATION_INSERT, FILE_INSERT, TICKET_INSERT
from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.testing.desk import mail, make_channel

WATCHED = ("Ticket", "Communication", "File")


class TestFastPaths(FrappeTestCase):
	"""The document events the ingestion's fast path runs are those `usedesk_email.db` lists:
	a rule added to another event of these doctypes does not run for received mail."""

	def setUp(self):
		self.channel = make_channel(f"fast paths {frappe.generate_hash(length=6)}")

	def events_of(self, raw: bytes) -> list[tuple[str, str]]:
		ran, run_method = [], Document.run_method

		def recording(doc, method, *args, **kwargs):
			if doc.doctype in WATCHED:
				ran.append((doc.doctype, method))
			return run_method(doc, method, *args, **kwargs)

		with patch.object(Document, "run_method", recording):
			result = ingest_raw(self.channel, raw, "test")
		self.assertEqual(result.outcome, "stored")
		return ran

	def test_a_new_ticket_runs_the_listed_events_and_no_others(self):
		raw = attached(mail("Fast path", message_id="fast-1@client.example"))
		expected = [
			*(("Ticket", event) for event in (*TICKET_INSERT.before, *TICKET_INSERT.after)),
			*(("File", event) for event in (*FILE_INSERT.before, *FILE_INSERT.after)),
			*(("Communication", event) for event in COMMUNICATION_INSERT.after),
		]
		self.assertEqual(self.events_of(raw), expected)

	def test_a_message_to_a_ticket_runs_no_ticket_event(self):
		ingest_raw(self.channel, mail("Fast path", message_id="fast-2@client.example"), "test")
		answer = mail(
			"Re: Fast path", message_id="fast-3@client.example", in_reply_to="fast-2@client.example"
		)
		self.assertEqual(self.events_of(answer), [("Communication", "after_insert")])


def attached(raw: bytes) -> bytes:
	"""The message with one text attachment (a File of its own)."""
	head, body = raw.split(b"\r\n\r\n", 1)
	head = head.replace(
		b"Content-Type: text/plain; charset=utf-8", b'Content-Type: multipart/mixed; boundary="b"'
	)
	return (
		head
		+ b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
		+ body
		+ b'\r\n--b\r\nContent-Type: text/plain; name="notes.txt"\r\n'
		+ b'Content-Disposition: attachment; filename="notes.txt"\r\n\r\nsome notes\r\n--b--\r\n'
	)
