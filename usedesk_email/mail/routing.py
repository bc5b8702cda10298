"""Which address a delivered message was for, and whether a request body is mail at all.

An MTA pipe or an inbound-parse webhook hands over one message for one of many channels;
the envelope recipient is the most reliable witness, then the headers the receiving MTA
added (Delivered-To, X-Original-To), then what the sender wrote (To, Cc).
"""

import json
import re
from email.utils import getaddresses

from usedesk_email.mail.message import ParsedMessage

# RFC 5322 header field names: printable ASCII except the colon.
_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_KNOWN_FIELDS = {
	b"from",
	b"to",
	b"cc",
	b"subject",
	b"date",
	b"message-id",
	b"received",
	b"return-path",
	b"delivered-to",
	b"x-original-to",
	b"mime-version",
	b"content-type",
	b"sender",
	b"reply-to",
}
_HEAD_SCAN_LINES = 200


def looks_like_mail(raw: bytes) -> bool:
	"""A header block that names at least one mail header field.

	Refuses what is obviously something else (JSON, an image, a web form) at the door, so
	the sender gets an error instead of the failure log filling with non-mail. An mbox
	"From " envelope line, as MTA pipes may prepend, is allowed.
	"""
	lines = raw.lstrip(b"\r\n").splitlines()
	if lines and lines[0].startswith(b"From "):
		lines = lines[1:]
	if not lines or not _FIELD.match(lines[0]):
		return False
	for line in lines[:_HEAD_SCAN_LINES]:
		if not line.strip():
			break
		match = _FIELD.match(line)
		if match and match.group(1).lower() in _KNOWN_FIELDS:
			return True
	return False


def split_addresses(value: str | None) -> list[str]:
	"""Addresses from a recipient parameter: a list separated by commas, or a SendGrid envelope.

	SendGrid's inbound parse sends the envelope as JSON ({"to": [...], "from": ...}); MTAs and
	Mailgun send a plain address.
	"""
	value = (value or "").strip()
	if not value:
		return []
	if value.startswith("{"):
		try:
			envelope = json.loads(value)
		except ValueError:
			return []
		to = envelope.get("to") if isinstance(envelope, dict) else None
		value = ", ".join(str(a) for a in to) if isinstance(to, list) else str(to or "")
	return [email.strip().lower() for _name, email in getaddresses([value]) if "@" in email]


def recipient_candidates(explicit: list[str], msg: ParsedMessage) -> list[str]:
	"""Where to look for the channel's address, most reliable first, each address once."""
	found: dict[str, None] = {}
	for address in [
		*explicit,
		*msg.delivered_to,
		*(a.email for a in msg.to),
		*(a.email for a in msg.cc),
	]:
		address = address.strip().lower()
		if address:
			found.setdefault(address, None)
	return list(found)
