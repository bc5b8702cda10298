"""Ledger rows of the old shape: the dedupe key was the Message-ID's hash alone.

Now threading looks messages up by `message_key` (that same hash), and the dedupe key of an
incoming message also holds its sender, so a stranger cannot pre-empt a message by its id.
"""

import frappe

from usedesk_email.ingest import LEDGER, dedupe_key

BATCH = 5000


def execute() -> None:
	frappe.db.sql(f"UPDATE `tab{LEDGER}` SET message_key=dedupe_key WHERE COALESCE(message_key, '')=''")
	rows = frappe.db.sql(
		f"""SELECT ledger.name, ledger.message_id, comm.sender FROM `tab{LEDGER}` ledger
		JOIN `tabCommunication` comm ON comm.name = ledger.communication
		WHERE ledger.direction='Incoming' AND ledger.dedupe_key = ledger.message_key""",
	)
	for done, (name, message_id, sender) in enumerate(rows, 1):
		if sender:
			key = dedupe_key(message_id or "", sender.strip().lower())
			frappe.db.sql(f"UPDATE `tab{LEDGER}` SET dedupe_key=%s WHERE name=%s", (key, name))
		if done % BATCH == 0:
			frappe.db.commit()
