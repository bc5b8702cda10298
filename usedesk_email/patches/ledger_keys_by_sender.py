"""Ledger rows of the old shape: the dedupe key was the Message-ID's hash alone.

Now threading looks messages up by `message_key` (that same hash), and the dedupe key of an
incoming message also holds its sender, so a stranger cannot pre-empt a message by its id.
"""

import frappe
from frappe.query_builder.functions import Coalesce

from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import (
	CHANNEL_MESSAGE,
	dedupe_key,
)

BATCH = 5000


def execute() -> None:
	ledger, comm = frappe.qb.DocType(CHANNEL_MESSAGE), frappe.qb.DocType("Communication")
	(
		frappe.qb.update(ledger)
		.set(ledger.message_key, ledger.dedupe_key)
		.where(Coalesce(ledger.message_key, "") == "")
	).run()
	rows = (
		frappe.qb.from_(ledger)
		.join(comm)
		.on(comm.name == ledger.communication)
		.select(ledger.name, ledger.message_id, comm.sender)
		.where((ledger.direction == "Incoming") & (ledger.dedupe_key == ledger.message_key))
	).run()
	for done, (name, message_id, sender) in enumerate(rows, 1):
		if sender:
			key = dedupe_key(message_id or "", sender.strip().lower())
			frappe.db.set_value(CHANNEL_MESSAGE, name, "dedupe_key", key, update_modified=False)
		if done % BATCH == 0:
			frappe.db.commit()
