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
from frappe.utils import get_fullname, now_datetime, split_emails, strip_html, validate_email_address

from usedesk_email.channel_config import own_addresses
from usedesk_email.ingest import contact_of, split_lines
from usedesk_email.mail.quote_split import expanded, text_to_html
from usedesk_email.outgoing import earlier_messages, recipients_of


def create_reply(
	ticket: str, content: str, attachments: list[str] | None = None, cc: list[str] | None = None
) -> dict:
	doc = frappe.get_doc("Ticket", ticket)
	doc.check_permission("email")
	if is_empty(content) and not attachments:
		frappe.throw(_("The reply is empty: write a message or attach a file."), title=_("Empty reply"))
	channel = frappe.get_doc("Email Channel", doc.channel)
	add_participants(doc, channel, cc or [])
	if not recipients_of(doc):
		frappe.throw(
			_("Ticket {0} has no client address to reply to.").format(doc.name), title=_("No recipient")
		)
	comm = new_communication(doc, channel, content, attachments or [])
	return answer(comm, channel)


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
	address = (to or "").strip().lower()
	if len(split_emails(address)) != 1 or validate_email_address(address) != address:
		frappe.throw(
			_("{0} is not one e-mail address.").format(frappe.bold(to or "")), frappe.InvalidEmailAddressError
		)
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


def add_participants(ticket, channel, cc: list[str]) -> None:
	current = [ticket.client_email, *split_lines(ticket.cc_addresses)]
	own = own_addresses(channel)
	for raw in cc:
		address = (raw or "").strip().lower()
		if not address:
			continue
		if not validate_email_address(address):
			frappe.throw(
				_("{0} is not an e-mail address.").format(frappe.bold(raw)), frappe.InvalidEmailAddressError
			)
		if address not in current and address not in own:
			current.append(address)
	new_cc = "\n".join(current[1:])
	if new_cc != (ticket.cc_addresses or ""):
		ticket.db_set("cc_addresses", new_cc)


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
			"sender_full_name": channel.from_name or get_fullname(frappe.session.user),
			"recipients": ", ".join(recipients_of(ticket)),
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


def answer(comm, channel) -> dict:
	"""The reply is kept either way; a known reason it cannot go out is said at once."""
	problem = outgoing_problem(channel)
	if problem:
		frappe.msgprint(problem, title=_("Reply saved, not sent"), indicator="red")
	return {"communication": comm.name, "status": "Error" if problem else "Scheduled", "error": problem}


def outgoing_problem(channel) -> str | None:
	if channel.outgoing_type == "Internal" and not EmailAccount.find_outgoing(
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
