"""The bodies of a received message as stored: quoted history collapsed, and cut to what the
database takes (the original is then kept beside them, see `files.keep_original`)."""

import frappe

from usedesk_email.db import max_allowed_packet
from usedesk_email.mail.message import ParsedMessage
from usedesk_email.mail.quote_split import collapsed
from usedesk_email.mail.sanitize import sanitise_html

# The HTML and the text of one message are each stored up to this size, or less when the
# database takes smaller statements (a quarter of max_allowed_packet, less 1 MB: escaping
# may double the bytes, and both go in one INSERT); a longer body is cut, with a note, and
# the original message is kept as a file on it.
BODY_MAX_BYTES = 4 * 1024 * 1024


ORIGINAL_NAME = "original-message.eml"


def fitted_bodies(msg: ParsedMessage) -> tuple[str, str]:
	"""The HTML (quoted history collapsed) and text to store; cut, with a note, when too long."""
	limit = body_limit(len(msg.new_html) + len(msg.quoted_html) + len(msg.text))
	html_bytes = len(msg.new_html.encode()) + len(msg.quoted_html.encode())
	if html_bytes <= limit:
		content = collapsed(msg.new_html, msg.quoted_html, frappe._("Quoted text"))
	else:
		whole = msg.new_html + msg.quoted_html
		content = sanitise_html(cut_bytes(whole, limit)) + cut_note()
	text = msg.text
	if len(text.encode()) > limit:
		text = cut_bytes(text, limit) + "\n\n" + frappe._("[Cut: the original message is attached.]")
	return content, text


def body_limit(chars: int) -> int:
	"""Bytes one body may take in the database (see BODY_MAX_BYTES)."""
	if chars * 4 < BODY_MAX_BYTES // 4:
		return BODY_MAX_BYTES  # far below any limit: no need to ask the database
	packet = max_allowed_packet()
	return min(BODY_MAX_BYTES, max(packet // 4 - 1024 * 1024, 64 * 1024))


def cut_bytes(text: str, limit: int) -> str:
	return text.encode()[:limit].decode(errors="ignore")


def cut_note() -> str:
	return '<p class="usedesk-cut"><i>{}</i></p>'.format(
		frappe._(
			"This message was too long to show whole: it is cut here. The original is attached as {0}."
		).format(ORIGINAL_NAME)
	)
