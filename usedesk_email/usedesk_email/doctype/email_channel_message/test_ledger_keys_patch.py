# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.patches import ledger_keys_by_sender
from usedesk_email.testing.desk import mail, make_channel, record_outgoing
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import (
	CHANNEL_MESSAGE,
	dedupe_key,
	message_key,
)


class TestLedgerKeysPatch(FrappeTestCase):
	"""A site whose ledger rows have the old shape (dedupe key = hash of the Message-ID alone)."""

	def test_old_rows_get_their_keys_and_keep_working(self):
		channel = make_channel(f"patch {frappe.generate_hash(length=6)}")
		stored = ingest_raw(channel, mail("Old", sender="Old@Example.org", message_id="old@example.org"), "t")
		record_outgoing(channel.name, "ours@site.example", stored.ticket)
		# back to the old shape
		frappe.db.sql(
			f"UPDATE `tab{CHANNEL_MESSAGE}` SET dedupe_key=SHA2(message_id, 256), message_key=NULL WHERE channel=%s",
			channel.name,
		)
		frappe.db.commit()

		ledger_keys_by_sender.execute()
		ledger_keys_by_sender.execute()  # twice: nothing changes the second time
		rows = {
			r.message_id: r
			for r in frappe.get_all(
				CHANNEL_MESSAGE, {"channel": channel.name}, ["message_id", "dedupe_key", "message_key"]
			)
		}
		self.assertEqual(rows["old@example.org"].message_key, message_key("old@example.org"))
		self.assertEqual(rows["old@example.org"].dedupe_key, dedupe_key("old@example.org", "old@example.org"))
		self.assertEqual(rows["ours@site.example"].dedupe_key, dedupe_key("ours@site.example"))
		self.assertEqual(rows["ours@site.example"].message_key, message_key("ours@site.example"))

		again = ingest_raw(channel, mail("Old", sender="old@example.org", message_id="old@example.org"), "t")
		self.assertTrue(again.duplicate, "a re-delivery of a migrated message is still a duplicate")
		reply = ingest_raw(
			channel,
			mail(
				"Re: Old",
				sender="old@example.org",
				message_id="r@example.org",
				in_reply_to="ours@site.example",
			),
			"t",
		)
		self.assertEqual(reply.ticket, stored.ticket, "threading finds migrated rows")
