"""What the letters of a reply say: the draft the engine composes them from (recipients,
sender, the agent's message, the quoted history with its images, forwarded files)."""

import html
import mimetypes
from datetime import timezone
from zoneinfo import ZoneInfo

import frappe
from frappe import _
from frappe.utils import get_fullname, get_system_timezone, now_datetime

from usedesk_email.channel.config import own_addresses
from usedesk_email.db import from_text
from usedesk_email.mail.compose import OutgoingAttachment, ReplyDraft, quote_of, signature_of
from usedesk_email.mail.errors import megabytes
from usedesk_email.mail.message import AUTOMATIC, Address
from usedesk_email.mail.quote_build import QuotedMessage
from usedesk_email.mail.quote_split import expanded
from usedesk_email.mail.sanitize import sanitise_html
from usedesk_email.mail.thread_keys import ticket_token
from usedesk_email.participants import split_lines
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

INLINE_IMAGES_MAX_BYTES = 5 * 1024 * 1024  # the quoted history's images, all together


FORWARD_MAX_BYTES = 10 * 1024 * 1024  # the forwarded messages' attachments, all together


def draft_for(comm, ticket, channel, files: bool = True) -> ReplyDraft:
	"""The draft of `comm`'s letters; without `files` no file is read (a preview's draft)."""
	forward = bool(ticket.forwarded_from) and is_first_letter(comm, ticket)
	source = ticket.forwarded_from if forward else str(ticket.name)
	earlier = by_people(source, earlier_messages(source, comm))
	thread = [] if forward else [m.message_id for m in earlier if m.message_id]  # oldest first
	images = inline_images(earlier) if files else {}
	forwarded, left_out = forwarded_attachments(earlier, set(images)) if forward and files else ([], [])
	return ReplyDraft(
		subject=from_text(ticket.subject or ""),
		token=ticket_token(ticket.name),
		from_address=Address(channel.from_email, from_name(channel, comm.owner)),
		recipients=[Address(email) for email in recipients_of(ticket)],
		message_id_domain=frappe.local.site,
		html=comm.content or "",
		personal_signature=frappe.db.get_value("User", comm.owner, "email_signature") or "",
		common_signature=channel.signature or "",
		use_common_signature=bool(channel.use_common_signature),
		display_quote=forward or bool(channel.display_quote),
		do_not_quote=not forward and bool(channel.do_not_quote),
		bcc=channel.bcc_email or "",
		own_addresses=sorted(own_addresses(channel) - {channel.bcc_email}),
		attachments=[*attachments_of(comm.name), *forwarded] if files else [],
		history=quoted(earlier),
		inline_images=images,
		in_reply_to=thread[-1] if thread else "",
		references=thread,
		subject_prefix="Fwd:" if forward else ("Re:" if answers_client(earlier) else ""),
		notice=left_out_notice(left_out),
		language=quote_language(channel),
		zone=get_system_timezone(),
	)


def closing_preview(ticket, channel) -> dict:
	"""What the current user's next reply on `ticket` carries under the message, from the same
	draft its letters will be composed from: the signature and the quoted history as HTML for
	the desk. Both are sanitised (the quote is mail); images wait, the site's own are left out."""
	unsent = frappe._dict(name="", content="", owner=frappe.session.user, creation=now_datetime())
	draft = draft_for(unsent, ticket, channel, files=False)
	quote = quote_of(draft)
	return {
		"signature": sanitise_html(signature_of(draft)[1], load_images=True),
		"quoting": draft.display_quote and not draft.do_not_quote,
		"quote": sanitise_html(quote.html) if quote else "",
	}


def from_name(channel, agent: str) -> str:
	"""The channel's From name, or "Anna from Shop Support" when the channel says so."""
	name = channel.from_name or ""
	if not channel.from_name_with_agent or not agent or agent in ("Administrator", "Guest"):
		return name
	return _("{0} from {1}").format(get_fullname(agent), name or channel.name)


def by_people(ticket: str, messages: list) -> list:
	"""Without auto-replies and bounces: a reply threads to, and quotes, what people wrote."""
	machine = set(
		frappe.get_all(
			CHANNEL_MESSAGE,
			filters={"ticket": ticket, "direction": "Incoming", "kind": ("in", [k.value for k in AUTOMATIC])},
			pluck="communication",
		)
	)
	return [m for m in messages if m.name not in machine]


def quote_language(channel) -> str:
	"""The channel's quote language, else the site's, else English."""
	language = channel.quote_language or frappe.db.get_single_value("System Settings", "language") or "en"
	return language.split("-")[0].lower()


def answers_client(earlier: list) -> bool:
	"""A letter answers only when something was received: an agent's first letter has no "Re:"."""
	return any(m.sent_or_received == "Received" for m in earlier)


def is_first_letter(comm, ticket) -> bool:
	return not frappe.db.exists(
		"Communication",
		{
			"reference_doctype": "Ticket",
			"reference_name": str(ticket.name),  # a text column: a number here defeats its index
			"sent_or_received": "Sent",
			"communication_type": "Communication",
			"name": ("!=", comm.name),
			"creation": ("<", comm.creation),
		},
	)


def recipients_of(ticket) -> list[str]:
	return [ticket.client_email, *split_lines(ticket.cc_addresses)] if ticket.client_email else []


def earlier_messages(ticket: str, before=None) -> list:
	"""The ticket's e-mails, oldest first; with `before` (a Communication), those made before it."""
	filters = {"reference_doctype": "Ticket", "reference_name": ticket, "communication_type": "Communication"}
	if before:
		filters.update(name=("!=", before.name), creation=("<=", before.creation))
	return frappe.get_all(
		"Communication",
		filters=filters,
		fields=[
			"name",
			"sender",
			"sender_full_name",
			"sent_or_received",
			"communication_date",
			"content",
			"text_content",
			"message_id",
		],
		order_by="communication_date asc, creation asc",
	)


def quoted(messages: list) -> list[QuotedMessage]:
	zone = ZoneInfo(get_system_timezone())
	return [
		QuotedMessage(
			sender=Address(m.sender or "", from_text(m.sender_full_name or "")),
			date=m.communication_date.replace(tzinfo=zone).astimezone(timezone.utc),
			text=m.text_content or "",
			html=expanded(m.content or ""),
		)
		for m in messages
	]


def inline_images(messages: list) -> dict[str, OutgoingAttachment]:
	"""The files the quoted messages show as images, by URL, to travel as parts of the letter.

	Only files attached to those very messages (ingestion turned their ``cid:`` images into
	File URLs): a URL in mail content never reaches any other file of the site. Up to
	`INLINE_IMAGES_MAX_BYTES` in all; an image left out is dropped from the quote.
	"""
	content = {m.name: m.content or "" for m in messages}
	files = files_of(list(content), "file_url")
	result, total = {}, 0
	for row in files:
		url = row.file_url or ""
		if not url.startswith(("/private/files/", "/files/")) or not (
			url in content[row.attached_to_name] or html.escape(url) in content[row.attached_to_name]
		):
			continue
		if total + (row.file_size or 0) > INLINE_IMAGES_MAX_BYTES:
			continue
		total += row.file_size or 0
		result[url] = outgoing_attachment(row)
	return result


def forwarded_attachments(messages: list, inline: set[str]) -> tuple[list[OutgoingAttachment], list]:
	"""The files of the forwarded messages (not those quoted as images), up to
	`FORWARD_MAX_BYTES` in all; and the File rows left out."""
	attached, left_out, total = [], [], 0
	for row in files_of([m.name for m in messages], "file_url"):
		if row.file_url in inline:
			continue
		if total + (row.file_size or 0) > FORWARD_MAX_BYTES:
			left_out.append(row)
			continue
		total += row.file_size or 0
		attached.append(outgoing_attachment(row))
	return attached, left_out


def left_out_notice(rows: list) -> str:
	"""The forward's note about the files it could not carry: the recipient must ask for them."""
	if not rows:
		return ""
	names = ", ".join(f"{row.file_name} ({megabytes(row.file_size or 0)})" for row in rows)
	return _("Not attached, over the limit of {0} for a forward: {1}").format(
		megabytes(FORWARD_MAX_BYTES), names
	)


def attachments_of(communication: str) -> list[OutgoingAttachment]:
	return [outgoing_attachment(row) for row in files_of([communication])]


def files_of(communications: list[str], *fields: str) -> list:
	return frappe.get_all(
		"File",
		filters={"attached_to_doctype": "Communication", "attached_to_name": ("in", communications or ["-"])},
		fields=["name", "file_name", "file_size", "attached_to_name", *fields],
		order_by="creation asc",
	)


def outgoing_attachment(row) -> OutgoingAttachment:
	content = frappe.get_doc("File", row.name).get_content()
	payload = content.encode() if isinstance(content, str) else content
	content_type = mimetypes.guess_type(row.file_name or "")[0] or "application/octet-stream"
	return OutgoingAttachment(row.file_name or "attachment", content_type, payload)
