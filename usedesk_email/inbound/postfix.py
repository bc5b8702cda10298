"""The site's side of the Postfix pipe: the table of addresses Postfix may accept, and the
set-up text for this bench and site (`bench --site S usedesk-email postfix-config`).

Postfix refuses an address missing from the table during the SMTP conversation, so mail to
an unknown or disabled channel is never accepted and bounced later to a possibly forged
sender. The table is rewritten after every commit that changed a channel or the inbound
domain (never from an uncommitted state that may be rolled back).
"""

import os
import pwd

import frappe
from frappe import _
from frappe.query_builder.functions import IfNull

from usedesk_email.channel.kinds import INTERNAL
from usedesk_email.inbound.postfix_config import RECIPIENTS_FILE, PostfixSetup, write_recipient_table
from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import (
	inbound_domain,
	max_message_bytes,
)


def recipients_path() -> str:
	return os.path.abspath(frappe.get_site_path("usedesk_email", RECIPIENTS_FILE))


def accepted_addresses() -> list[str]:
	"""What `deliver` would route: enabled Internal channels' internal addresses, as committed.

	Read over a connection of its own: this runs right after a commit, and a read on the
	session's connection would fix the snapshot of its next transaction at that moment
	(the caller's next reads would not see what other processes commit meanwhile).
	"""
	from frappe.database import get_db

	db = get_db(
		host=frappe.conf.db_host,
		port=frappe.conf.db_port,
		user=frappe.conf.db_name,
		password=frappe.conf.db_password,
		cur_db_name=frappe.conf.db_name,
	)
	try:
		channel = frappe.qb.DocType("Email Channel")
		query = (
			frappe.qb.from_(channel)
			.select(channel.internal_address)
			.where((channel.incoming_type == INTERNAL) & (channel.enabled == 1))
			.where(IfNull(channel.internal_address, "") != "")
		)
		return [row[0] for row in db.sql(query.get_sql())]  # constants only: nothing to bind
	finally:
		db.close()


def refresh_recipient_table() -> bool:
	"""Write the table now; a failure is logged, never raised (a channel is saved anyway)."""
	try:
		return write_recipient_table(recipients_path(), accepted_addresses())
	except Exception:
		frappe.log_error(title=_("The Postfix recipient table could not be written"))
		return False


def refresh_after_commit(*_args, **_kwargs) -> None:
	"""Doc-event hook: refresh once, after the transaction that changed channels commits."""
	if refresh_recipient_table not in frappe.db.after_commit._functions:
		frappe.db.after_commit.add(refresh_recipient_table)


def site_setup() -> PostfixSetup:
	"""This bench and site, as the pipe must name them (absolute paths, the bench's owner)."""
	bench = os.path.dirname(os.path.abspath(frappe.local.sites_path))
	return PostfixSetup(
		bench=bench,
		site=frappe.local.site,
		domain=inbound_domain(),
		user=pwd.getpwuid(os.stat(bench).st_uid).pw_name,
		max_message_bytes=max_message_bytes(),
	)


def setup_warnings(setup: PostfixSetup) -> list[str]:
	"""What would stop the printed set-up from working on this machine."""
	warnings = []
	if setup.user == "root":
		warnings.append(
			_(
				"The bench belongs to root; Postfix's pipe never runs a command as root. Run the bench as an ordinary user."
			)
		)
	path = os.path.dirname(setup.recipients)
	while path not in ("", "/"):
		if not os.stat(path).st_mode & 0o001:
			warnings.append(
				_(
					"{0} is not searchable by other users, so Postfix cannot read the recipient table below it."
				).format(path)
			)
			break
		path = os.path.dirname(path)
	return warnings
