"""Which address a delivered message was for, and whether a request body is mail at all.

An MTA pipe or an inbound-parse webhook hands over one message for one of many channels;
the envelope recipient is the most reliable witness, then the headers the receiving MTA
added (Delivered-To, X-Original-To), then what the sender wrote (To, Cc).
"""

import json
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from usedesk_email.mail.headers import decode_addresses

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
# The most of a message read before the sender of a request is authenticated: the header
# block, where the recipient is (Postfix's own header_size_limit is 100 KB).
HEAD_LIMIT = 256 * 1024
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_ROUTING_FIELDS = ("delivered-to", "x-original-to", "to", "cc")


def head_of(raw: bytes) -> bytes:
	"""The header block of a message, at most HEAD_LIMIT bytes of it."""
	head = raw[:HEAD_LIMIT]
	blank = _BLANK_LINE.search(head)
	return head[: blank.start()] if blank else head


def looks_like_mail(raw: bytes) -> bool:
	"""A header block that names at least one mail header field.

	Refuses what is obviously something else (JSON, an image, a web form) at the door, so
	the sender gets an error instead of the failure log filling with non-mail. An mbox
	"From " envelope line, as MTA pipes may prepend, is allowed.
	"""
	lines = head_of(raw.lstrip(b"\r\n")).splitlines()[:_HEAD_SCAN_LINES]
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


def recipient_candidates(explicit: list[str], raw: bytes) -> list[str]:
	"""Where to look for the channel's address, most reliable first, each address once.

	An envelope recipient given by the MTA or the webhook decides alone; without one, the
	header fields do (read from the header block only: nothing else is parsed before the
	request is authenticated).
	"""
	addresses = explicit
	if not addresses:
		head = BytesHeaderParser(policy=compat32).parsebytes(head_of(raw))
		addresses = [
			a.email
			for field in _ROUTING_FIELDS
			for a in decode_addresses([str(v) for v in head.get_all(field, [])], [], field)
		]
	found: dict[str, None] = {}
	for address in addresses:
		address = address.strip().lower()
		if address:
			found.setdefault(address, None)
	return list(found)
