"""Whitelisted methods of the app (desk and REST)."""

import frappe
from frappe import _
from frappe.rate_limiter import rate_limit
from frappe.utils import cint, split_emails

from usedesk_email.channel.config import ENCRYPTION
from usedesk_email.channel.kinds import OFFICE_365
from usedesk_email.conversation import conversation as conversation_of
from usedesk_email.conversation import start_conversation
from usedesk_email.inbound.endpoint import accept, summary
from usedesk_email.mail import providers
from usedesk_email.mail.providers import preset_for
from usedesk_email.mail.routing import split_addresses
from usedesk_email.outbound import delivery, replies
from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import (
	inbound_rate_limit,
)

CONFIDENTIAL = ("Email Channel", "Email Channel Message", "Email Channel Failure")
RAW_MIME_FIELDS = ("body-mime", "email")  # Mailgun's raw MIME field, SendGrid's in raw mode
SECRET_HEADER = "X-Usedesk-Secret"


@frappe.whitelist()
def provider_preset(address: str | None = None, office365: bool = False) -> dict | None:
	"""Host, port and encryption of a well-known provider, for the channel form to fill in live;
	`provider_hosts` are all presets' hosts, which the form may replace (typed ones it keeps)."""
	preset = providers.OFFICE_365 if office365 else preset_for(address or "")
	if not preset:
		return None
	(imap_host, imap_port, imap_security), (smtp_host, smtp_port, smtp_security) = preset.imap, preset.smtp
	return {
		"imap_host": imap_host,
		"imap_port": imap_port,
		"imap_encryption": ENCRYPTION[imap_security],
		"smtp_host": smtp_host,
		"smtp_port": smtp_port,
		"smtp_encryption": ENCRYPTION[smtp_security],
		"provider_hosts": list(providers.PRESET_HOSTS),
	}


@frappe.whitelist()
def saves_sent(smtp_host: str | None = None, outgoing_type: str | None = None) -> str | None:
	"""The provider that files sent mail itself, for the channel form's note on the Sent folder."""
	if outgoing_type == OFFICE_365:
		return providers.OFFICE_365.name
	preset = providers.saves_sent(smtp_host or "")
	return preset.name if preset else None


@frappe.whitelist()
def get_count(doctype: str, filters=None, debug: bool = False, cache: bool = False) -> int:
	"""Frappe 15's `frappe.client.get_count` counts without a permission check, filters and all.

	A count filtered on a field (`imap_host like "a%"`) reads it letter by letter, so the app's
	own doctypes are counted only for users who may read them; others are counted as before.
	"""
	from frappe.client import get_count as frappe_get_count

	if doctype in CONFIDENTIAL and not frappe.has_permission(doctype, "read"):
		frappe.throw(_("No permission for {0}").format(_(doctype)), frappe.PermissionError)
	return frappe_get_count(doctype, filters, debug, cache)


@frappe.whitelist()
def ticket_context(ticket: str | int) -> dict:
	"""What the Ticket form needs of its channel, for anyone who may read the ticket.

	Agents have no permission on Email Channel (its fields are the mailbox configuration), so
	the form asks here instead of reading the channel: the name and two yes/no answers.
	"""
	doc = frappe.get_doc("Ticket", str(ticket))
	doc.check_permission("read")
	channel = (
		frappe.db.get_value(
			"Email Channel",
			doc.channel,
			["name", "forward_as_new_ticket", "outgoing_type", "from_email"],
			as_dict=True,
		)
		if doc.channel
		else None
	)
	may_email = bool(doc.has_permission("email"))
	reason = None
	if not channel:
		reason = _("The ticket has no channel to send from.")
	elif not may_email:
		reason = _("You may not send e-mail from ticket {0}.").format(doc.name)
	else:
		reason = replies.outgoing_problem(channel)
	return {
		"channel": channel.name if channel else None,
		"can_forward": bool(channel and may_email and channel.forward_as_new_ticket),
		"can_send": reason is None,
		"reason": reason,
	}


@frappe.whitelist(allow_guest=True, methods=["POST"])
@rate_limit(limit=inbound_rate_limit, seconds=60)
def inbound(recipient: str | None = None, envelope: str | None = None, secret: str | None = None) -> dict:
	"""Mail for an Internal channel's address, from an MTA or an inbound-parse webhook.

	`recipient` is the envelope recipient (Mailgun sends it so named); `envelope` is SendGrid's
	JSON envelope. `secret` is for webhook services that cannot send the header.
	"""
	raw = request_message()
	channel, result = accept(
		raw,
		split_addresses(recipient) + split_addresses(envelope),
		source="endpoint",
		secret=frappe.get_request_header(SECRET_HEADER) or secret,
		check_auth=True,
	)
	if result.outcome == "failed":
		frappe.local.response.http_status_code = 202  # kept whole for an admin; do not resend
	return summary(channel, result)


def request_message() -> bytes:
	"""The raw message: the request body, or the raw-MIME field of a webhook's form post."""
	request = frappe.request
	if request.mimetype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
		return request.get_data()
	for field in RAW_MIME_FIELDS:
		if field in request.files:
			return request.files[field].read()
		if request.form.get(field):
			return request.form[field].encode("utf-8", "surrogateescape")
	return b""


@frappe.whitelist(methods=["POST"])
def reply(
	ticket: str | int,
	content: str,
	attachments: list[str] | str | None = None,
	cc: list[str] | str | None = None,
) -> dict:
	"""Reply on a ticket to its client and CC participants (each gets their own letter).

	`attachments` are names of File documents the user may read; `cc` adds participants.
	Lists may come JSON-encoded, as the desk's `frappe.call` sends them.
	"""
	return replies.create_reply(str(ticket), content, string_list(attachments), string_list(cc))


@frappe.whitelist(methods=["GET"])
def reply_preview(ticket: str | int) -> dict:
	"""What a reply on the ticket will carry under the message: the signature and the quoted
	history, as sanitised HTML for the Reply dialog (`quoting` says whether the channel quotes)."""
	return replies.preview(str(ticket))


@frappe.whitelist()
def channel_names(
	doctype: str = "Email Channel",
	txt: str = "",
	searchfield: str | None = None,
	start: int = 0,
	page_len: int = 20,
	filters: dict | str | None = None,
	**kwargs,
) -> list[list[str]]:
	"""Channel names for the Ticket list's channel filter: agents read tickets, not channels."""
	if not frappe.has_permission("Ticket", "read"):
		raise frappe.PermissionError
	return frappe.get_all(
		"Email Channel",
		filters={"name": ("like", f"%{txt or ''}%")},
		fields=["name"],
		order_by="name asc",
		limit_start=cint(start),
		limit_page_length=min(cint(page_len) or 20, 100),
		as_list=True,
	)


@frappe.whitelist(methods=["GET"])
def conversation(ticket: str | int, start: int = 0, limit: int = 50) -> dict:
	"""The ticket's messages, oldest first: direction, people, time, subject, the new text and
	the quoted history apart, attachments, and for sent ones each letter's delivery status."""
	return conversation_of(str(ticket), cint(start), cint(limit) or 50)


@frappe.whitelist(methods=["POST"])
def create_ticket(
	channel: str,
	to: str,
	subject: str,
	content: str,
	cc: list[str] | str | None = None,
	attachments: list[str] | str | None = None,
) -> dict:
	"""Start a conversation: a ticket whose client is `to`, and its first letter (no "Re:")."""
	return start_conversation(channel, to, subject, content, string_list(cc), string_list(attachments))


@frappe.whitelist(methods=["POST"])
def forward(ticket: str | int, to: str, note: str | None = None) -> dict:
	"""Forward the conversation to `to` as a new ticket that links back to this one."""
	return replies.forward_ticket(str(ticket), to, note)


def string_list(value: list | str | None) -> list[str]:
	if isinstance(value, str):
		value = frappe.parse_json(value) if value.strip().startswith("[") else [value]
	return [str(item) for item in value or [] if str(item).strip()]


@frappe.whitelist(methods=["POST"])
def retry_sending(communication: str | None = None, ticket: str | int | None = None) -> dict:
	"""Send the failed or uncertain letters of one reply, or of every reply on a ticket, again.

	A person's decision, never automatic: an uncertain letter may already have arrived.
	"""
	if communication:
		ticket = frappe.db.get_value("Communication", communication, "reference_name")
	frappe.get_doc("Ticket", str(ticket)).check_permission("email")
	replies_to_retry = [communication] if communication else delivery.replies_with_problems(str(ticket))
	for name in replies_to_retry:
		delivery.retry_failed(name)
	return {"communications": replies_to_retry, "status": "Scheduled"}


@frappe.whitelist(methods=["POST"])
def make(
	doctype: str | None = None,
	name: str | None = None,
	content: str | None = None,
	send_email: bool | int | str = False,
	attachments: list | str | None = None,
	recipients: str | None = None,
	cc: str | None = None,
	**kwargs,
) -> dict:
	"""Frappe's e-mail composer on a Ticket sends through the channel, and only through it."""
	from frappe.core.doctype.communication.email import make as frappe_make

	if doctype != "Ticket" or not cint(send_email):
		return frappe_make(
			doctype=doctype,
			name=name,
			content=content,
			send_email=send_email,
			attachments=attachments,
			recipients=recipients,
			cc=cc,
			**kwargs,
		)
	extra = [*split_emails(recipients or ""), *split_emails(cc or "")]
	result = replies.create_reply(str(name), content or "", string_list(attachments), extra)
	return {"name": result["communication"], "emails_not_sent_to": ""}
