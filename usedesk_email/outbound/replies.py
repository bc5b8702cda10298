"""An agent's reply or forward on a ticket: a Communication that the app, not Frappe, sends.

The Communication is committed with the request; the letters go out from a job queued by
the Communication's after_insert doc event (`outgoing.queue_sending`). A reply whose
channel cannot send is still kept, with the reason on the ticket and in the answer.
"""

import html

import frappe
from frappe import _
from frappe.core.doctype.communication.email import add_attachments
from frappe.email.doctype.email_account.email_account import EmailAccount
from frappe.utils import get_fullname, now_datetime, strip_html, validate_email_address

from usedesk_email.channel.config import own_addresses
from usedesk_email.channel.kinds import INTERNAL
from usedesk_email.contacts import contact_of
from usedesk_email.mail.quote_split import expanded, text_to_html
from usedesk_email.outbound.drafts import closing_preview, earlier_messages, recipients_of
from usedesk_email.participants import add_participants, parse_typed

DEFAULT_LETTER_CAP = 50


def create_reply(
	ticket: str, content: str, attachments: list[str] | None = None, cc: list[str] | None = None
) -> dict:
	doc = frappe.get_doc("Ticket", ticket)
	doc.check_permission("email")
	if is_empty(content) and not attachments:
		frappe.throw(_("The reply is empty: write a message or attach a file."), title=_("Empty reply"))
	channel = frappe.get_doc("Email Channel", doc.channel)
	added = parse_typed(cc or [])  # refused before anything is stored, naming the bad address
	if added:
		check_letter_cap(channel, [*recipients_of(doc), *added])
		add_participants(str(doc.name), added, exclude=own_addresses(channel))
		doc.reload()
	if not recipients_of(doc):
		frappe.throw(
			_("Ticket {0} has no client address to reply to.").format(doc.name), title=_("No recipient")
		)
	check_letter_cap(channel, recipients_of(doc))
	refuse_unsendable(channel)
	comm = new_communication(doc, channel, content, attachments or [])
	return answer(comm, channel)


def preview(ticket: str) -> dict:
	"""The signature and quote the user's next reply on `ticket` will carry (see `closing_preview`)."""
	doc = frappe.get_doc("Ticket", ticket)
	doc.check_permission("email")
	if not doc.channel:
		return {"signature": "", "quoting": False, "quote": ""}
	return closing_preview(doc, frappe.get_doc("Email Channel", doc.channel))


def forward_ticket(ticket: str, to: str, note: str | None = None) -> dict:
	"""A new ticket for the conversation with `to`, carrying the original's correspondence."""
	original = frappe.get_doc("Ticket", ticket)
	original.check_permission("email")
	channel = frappe.get_doc("Email Channel", original.channel)
	if not channel.forward_as_new_ticket:
		frappe.throw(
			_("Channel {0} does not allow forwarding (Forwarding — a new ticket is off).").format(
				channel.name
			),
			title=_("Forwarding is off"),
		)
	refuse_unsendable(channel)
	addresses = parse_typed([to or ""])  # "Payments Team <pay@example.com>" as a mail client reads it
	if len(addresses) != 1:
		frappe.throw(
			_("{0} is not one e-mail address.").format(frappe.bold(frappe.utils.escape_html(to or ""))),
			frappe.InvalidEmailAddressError,
		)
	address = addresses[0]
	if address in own_addresses(channel):
		frappe.throw(
			_("{0} is this channel's own address.").format(frappe.bold(address)),
			frappe.InvalidEmailAddressError,
		)
	new = frappe.get_doc(
		{
			"doctype": "Ticket",
			"subject": original.subject,
			"status": "Open",
			"channel": channel.name,
			"client_email": address,
			"contact": contact_of(address),
			"forwarded_from": original.name,
		}
	)
	new.flags.ignore_links = True
	new.insert()
	add_comment(new.name, correspondence_html(str(original.name)))
	add_comment(original.name, _("Forwarded to {0} as ticket {1}.").format(html.escape(address), new.name))
	comm = new_communication(new, channel, text_to_html(note) if (note or "").strip() else "", [])
	return {"ticket": str(new.name), **answer(comm, channel)}


def check_letter_cap(channel, recipients: list[str]) -> None:
	"""One reply sends a letter per recipient: a cap keeps one message from sending hundreds."""
	cap = channel.max_letters_per_reply or DEFAULT_LETTER_CAP
	count = len(dict.fromkeys(recipients))
	if count > cap:
		frappe.throw(
			_(
				"This reply would send {0} letters; channel {1} allows at most {2} per reply. Remove participants from the ticket or raise the channel's limit."
			).format(count, channel.name, cap),
			title=_("Too many recipients"),
		)


def new_communication(ticket, channel, content: str, attachments: list[str]):
	for name in attachments:
		frappe.get_doc("File", name).check_permission("read")
	comm = frappe.get_doc(
		{
			"doctype": "Communication",
			"communication_type": "Communication",
			"communication_medium": "Email",
			"sent_or_received": "Sent",
			"subject": ticket.subject,
			"content": content,
			"sender": channel.from_email,
			# who wrote it, in the timeline: "Anna Smith via Shop Support"
			"sender_full_name": _("{0} via {1}").format(
				get_fullname(frappe.session.user), channel.from_name or channel.name
			),
			# the addresses Frappe accepts; the others are refused by name when the letters are made
			"recipients": ", ".join(a for a in recipients_of(ticket) if validate_email_address(a)),
			"communication_date": now_datetime(),
			"reference_doctype": "Ticket",
			"reference_name": ticket.name,
			"has_attachment": 1 if attachments else 0,
			"delivery_status": "Scheduled",
		}
	)
	comm.flags.skip_add_signature = True  # the outgoing engine adds the signature, once
	comm.flags.usedesk_send = True
	comm.insert(ignore_permissions=True)
	if attachments:
		add_attachments(comm.name, attachments)
	return comm


def refuse_unsendable(channel) -> None:
	"""A reply that cannot go out is refused before it is saved, with the reason."""
	problem = outgoing_problem(channel)
	if problem:
		frappe.throw(problem, title=_("Cannot send"))


def answer(comm, channel) -> dict:
	"""What a caller learns: the reply is saved and its letters are on their way."""
	return {"communication": comm.name, "status": "Scheduled", "error": None}


def outgoing_problem(channel) -> str | None:
	if channel.outgoing_type == INTERNAL and not EmailAccount.find_outgoing(
		match_by_email=channel.from_email, match_by_doctype="Ticket"
	):
		return _(
			"Channel {0} sends through the site's outgoing mail, but the site has no outgoing Email Account."
		).format(channel.name)
	return None


def correspondence_html(ticket: str) -> str:
	parts = []
	for message in earlier_messages(ticket):
		who = html.escape(message.sender_full_name or message.sender or "")
		parts.append(
			f"<p><b>{who}</b> &lt;{html.escape(message.sender or '')}&gt;, {message.communication_date}:</p>"
			f"<blockquote>{expanded(message.content or '')}</blockquote>"
		)
	return "".join(parts) or _("(no earlier correspondence)")


def add_comment(ticket: str, content: str) -> None:
	frappe.get_doc(
		{
			"doctype": "Comment",
			"comment_type": "Comment",
			"reference_doctype": "Ticket",
			"reference_name": ticket,
			"content": content,
			"comment_email": frappe.session.user,
		}
	).insert(ignore_permissions=True)


def is_empty(content: str | None) -> bool:
	return not strip_html(content or "").strip() and "<img" not in (content or "")
