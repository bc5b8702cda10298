"""Mail delivered to an Internal channel's address: by an MTA pipe or an inbound-parse webhook.

Both doors share the checks (size, is it mail, which channel) and the exactly-once ingestion;
each door only translates the outcome into its own language (HTTP status, sysexits code).
"""

import hmac

import frappe
from frappe import _
from frappe.model.document import Document

from usedesk_email.channel.kinds import INTERNAL
from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.inbound.store import IngestResult
from usedesk_email.mail.routing import looks_like_mail, recipient_candidates
from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import (
	max_message_bytes,
)


class MessageTooLarge(frappe.ValidationError):
	http_status_code = 413


class NotMail(frappe.ValidationError):
	http_status_code = 400


class UnknownRecipient(frappe.DoesNotExistError):
	pass


def check_size(size: int, exact: bool = True, limit: int | None = None) -> None:
	"""Refuse a message over the limit (the site's cap unless the door allows more), naming
	its real size, or "more than" when only a lower bound of it is known."""
	cap = max_message_bytes()
	if size > (limit or cap):
		megabytes = f"{size / 1048576:.1f}"
		message = (
			_("The message is {0} MB; this site accepts at most {1} MB.")
			if exact
			else _("The message is more than {0} MB; this site accepts at most {1} MB.")
		)
		frappe.throw(
			message.format(megabytes, f"{cap / 1048576:.1f}"),
			MessageTooLarge,
			title=_("Message too large"),
		)


def check_is_mail(raw: bytes) -> None:
	if not raw.strip():
		frappe.throw(_("The request carried no message."), NotMail, title=_("Empty message"))
	if not looks_like_mail(raw):
		frappe.throw(
			_("The request body is not an RFC 822 e-mail message (it has no mail header fields)."),
			NotMail,
			title=_("Not an e-mail message"),
		)


def find_channel(explicit: list[str], raw: bytes) -> Document:
	"""The enabled Internal channel whose internal address the message was delivered to."""
	candidates = recipient_candidates(explicit, raw)
	if candidates:
		names = frappe.get_all(
			"Email Channel",
			filters={
				"incoming_type": INTERNAL,
				"enabled": 1,
				"internal_address": ("in", candidates),
			},
			fields=["name", "internal_address"],
		)
		by_address = {row.internal_address: row.name for row in names}
		for address in candidates:
			if address in by_address:
				return frappe.get_doc("Email Channel", by_address[address])
	frappe.throw(
		_("No enabled channel has the internal address this message was delivered to ({0}).").format(
			", ".join(candidates[:5]) or _("no recipient found")
		),
		UnknownRecipient,
		title=_("Unknown recipient"),
	)


def require_secret(given: str | None) -> None:
	"""A request without any secret is refused before its body is looked at."""
	if not given:
		frappe.throw(
			_("Send the channel's inbound secret in the X-Usedesk-Secret header."),
			frappe.AuthenticationError,
			title=_("Secret required"),
		)


def check_secret(channel, given: str) -> None:
	"""Constant-time comparison; a channel without a secret accepts nothing over HTTP."""
	expected = channel.get_password("inbound_secret", raise_exception=False) or ""
	if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
		frappe.throw(_("The inbound secret is wrong."), frappe.PermissionError, title=_("Wrong secret"))


def accept(
	raw: bytes,
	explicit: list[str],
	source: str,
	secret: str | None = None,
	*,
	check_auth: bool,
	size: tuple[int, bool] | None = None,
	limit: int | None = None,
):
	"""Check, route and ingest one delivered message: (channel, IngestResult).

	Before the sender is authenticated only the size and the header block are looked at;
	the message is parsed after. ``size``: (bytes, exact) when the door read only part of
	an oversized message; ``limit``: a door's own larger limit (the MTA pipe's).
	"""
	if check_auth:
		require_secret(secret)
	check_size(*(size or (len(raw), True)), limit=limit)
	check_is_mail(raw)
	channel = find_channel(explicit, raw)
	if check_auth:
		check_secret(channel, secret)
	return channel, ingest_raw(channel, raw, source)


def summary(channel, result: IngestResult) -> dict:
	"""What the sender learns: where the message went, or that it is kept for an admin."""
	return {
		"channel": channel.name,
		"outcome": result.outcome,
		"ticket": str(result.ticket) if result.ticket else None,
		"message": result.communication,
		"duplicate": result.duplicate,
		"failure": result.failure,
	}
