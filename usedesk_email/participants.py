"""A ticket's CC participants: normalised by one function, added under a row lock, capped.

Mail, agents and the Ticket form all add participants; each goes through here, so concurrent
additions never overwrite one another (the ticket row is locked from read to write) and the
stored list has one shape: one lower-cased address a line, no duplicates, no client.
"""

from email.utils import getaddresses

import frappe
from frappe import _

from usedesk_email.db import update_row
from usedesk_email.engine_errors import described
from usedesk_email.mail.addresses import normalize_email
from usedesk_email.mail.errors import ComposeError

# Participants a ticket keeps (each gets a letter per reply); a message itself keeps all its
# recipients.
MAX_PARTICIPANTS = 50


def split_lines(value: str | None) -> list[str]:
	return normalised((value or "").splitlines())


def normalised(addresses) -> list[str]:
	"""Lower-cased, stripped, each once, in order."""
	return list(dict.fromkeys(a.strip().lower() for a in addresses if a and a.strip()))


def add_participants(ticket: str, addresses: list[str], exclude: set[str] = frozenset()) -> list[str]:
	"""Add what is new (not the client, not `exclude`) up to MAX_PARTICIPANTS; returns the added."""
	row = frappe.db.get_value("Ticket", ticket, ["client_email", "cc_addresses"], for_update=True)
	if not row:
		return []
	client, cc = row
	current = split_lines(cc)
	skip = {*current, (client or "").strip().lower(), *exclude}
	added = [a for a in normalised(addresses) if a not in skip][: max(0, MAX_PARTICIPANTS - len(current))]
	if added:
		update_row("Ticket", ticket, cc_addresses="\n".join(current + added))
	return added


def parse_typed(values: list[str]) -> list[str]:
	"""Addresses an agent typed, read as a mail client reads them: display names, commas and
	semicolons; anything that cannot be sent to is refused, naming it."""
	found, bad = [], []
	for typed in entries(", ".join(v for v in values if v)):
		parsed = getaddresses([typed])
		address = parsed[0][1] if len(parsed) == 1 else ""
		if not address:
			bad.append((typed, _("not an e-mail address")))
			continue
		try:
			found.append(normalize_email(address).lower())
		except ComposeError as exc:
			bad.append((typed, described(exc)))
	if bad:
		frappe.throw(
			"<br>".join(
				_("{0} cannot be sent to: {1}").format(
					frappe.bold(frappe.utils.escape_html(typed)), frappe.utils.escape_html(why)
				)
				for typed, why in bad
			),
			frappe.InvalidEmailAddressError,
			title=_("Invalid address"),
		)
	return normalised(found)


def entries(text: str) -> list[str]:
	"""The comma- or semicolon-separated entries of an address list; separators inside quotes
	or angle brackets (`"Doe, John" <j@example.com>`) do not split."""
	parts, current, quoted, angle = [], [], False, False
	for char in text:
		if char == '"' and not angle:
			quoted = not quoted
		elif char == "<" and not quoted:
			angle = True
		elif char == ">" and not quoted:
			angle = False
		elif char in ",;" and not quoted and not angle:
			parts.append("".join(current))
			current = []
			continue
		current.append(char)
	parts.append("".join(current))
	return [part.strip() for part in parts if part.strip()]
