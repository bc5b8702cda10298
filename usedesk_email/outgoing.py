"""Sending an agent's reply: composed once into letters, then delivered by a background job.

The letters of a reply (one per recipient, plus the BCC copy) are composed on the job's
first run and stored in the ledger with their bytes, so every retry sends the same mail
under the same Message-IDs. A letter is marked Sending and committed before its SMTP
transaction; one found still Sending later (the worker died mid-send) may have been
delivered, so it becomes Uncertain and waits for a person instead of being resent.
"""

import html
import mimetypes
from datetime import timezone
from zoneinfo import ZoneInfo

import frappe
from frappe import _
from frappe.utils import add_to_date, get_fullname, get_system_timezone, now_datetime

from usedesk_email.channel_config import ca_file, own_addresses, smtp_settings
from usedesk_email.ingest import AUTOMATIC, LEDGER, dedupe_key, message_key
from usedesk_email.mail.compose import Letter, OutgoingAttachment, ReplyDraft, compose_reply
from usedesk_email.mail.errors import MailError, megabytes
from usedesk_email.mail.message import Address
from usedesk_email.mail.quote_build import QuotedMessage
from usedesk_email.mail.quote_split import expanded
from usedesk_email.mail.smtp_sender import Outcome, send
from usedesk_email.mail.thread_keys import ticket_token
from usedesk_email.oauth import with_fresh_token
from usedesk_email.participants import split_lines
from usedesk_email.rows import from_text, insert_plain
from usedesk_email.sent_folder import due as due_for_sent_folder
from usedesk_email.sent_folder import save_to_sent

SEND_QUEUE = "short"
RETRY_MINUTES = (1, 5, 15, 60, 180, 360)  # after the last one a temporary failure is final
TO_SEND = ("Queued", "Temporary failure")
PROBLEMS = ("Failed", "Uncertain")  # a person decides whether to send again
SHOWN = (*PROBLEMS, "Temporary failure", "Refused")  # on the ticket, while it lasts
DELIVERED = ("Sent", "Handed to Email Queue")  # the reply is out: the ticket is Replied
INLINE_IMAGES_MAX_BYTES = 5 * 1024 * 1024  # the quoted history's images, all together
FORWARD_MAX_BYTES = 10 * 1024 * 1024  # the forwarded messages' attachments, all together


def queue_sending(doc, method=None) -> None:
	"""Communication after_insert: a reply made by this app goes out after the commit."""
	if doc.flags.usedesk_send:
		enqueue_send(doc.name)


def enqueue_send(communication: str) -> None:
	frappe.enqueue(
		"usedesk_email.outgoing.send_communication",
		queue=SEND_QUEUE,
		job_id=f"usedesk_email:send:{communication}",
		deduplicate=True,
		enqueue_after_commit=True,
		communication=communication,
	)


def send_communication(communication: str) -> None:
	"""Compose (first run only) and deliver the letters of one reply; never two workers at once."""
	lock = f"usedesk_email:send:{communication}"
	if not frappe.db.sql("SELECT GET_LOCK(%s, 0)", lock)[0][0]:
		return
	try:
		comm = frappe.get_doc("Communication", communication)
		ticket = frappe.get_doc("Ticket", comm.reference_name)
		channel = frappe.get_doc("Email Channel", ticket.channel)
		mark_interrupted_as_uncertain(comm.name)
		letters = letters_of(comm.name)
		if not letters:
			if not compose_letters(comm, ticket, channel):
				return
			letters = letters_of(comm.name)
		rows = [row for row in letters if row.status in TO_SEND and is_due(row)]
		if rows and channel.outgoing_type == "Internal":
			hand_to_email_queue(channel, comm, rows)
		elif rows:
			send_over_smtp(channel, rows)
		record_status(comm.name, str(ticket.name))
		save_to_sent(channel, comm.name)  # after the letters are out; failures go to the channel
	finally:
		frappe.db.sql("SELECT RELEASE_LOCK(%s)", lock)


def letters_of(communication: str) -> list:
	return frappe.get_all(
		LEDGER,
		filters={"communication": communication, "direction": "Outgoing"},
		fields=["name", "recipient", "message_id", "status", "attempts", "next_attempt_at", "bcc", "raw"],
		order_by="creation asc, bcc asc",
	)


def is_due(row) -> bool:
	return not row.next_attempt_at or row.next_attempt_at <= now_datetime()


def mark_interrupted_as_uncertain(communication: str) -> None:
	frappe.db.set_value(
		LEDGER,
		{"communication": communication, "status": "Sending"},
		{
			"status": "Uncertain",
			"error": _("The sending was interrupted; the letter may or may not have arrived."),
		},
	)
	frappe.db.commit()


def compose_letters(comm, ticket, channel) -> bool:
	"""Store the reply's letters; a reply that cannot be composed is kept, marked failed (a
	ledger row without a letter, which Retry Sending removes to compose again)."""
	try:
		composed = compose_reply(draft_for(comm, ticket, channel))
	except Exception as exc:
		frappe.db.rollback()
		comm.db_set("delivery_status", "Error")
		ledger_row(channel, ticket, comm, "", "Failed", _("The reply could not be composed: {0}").format(exc))
		record_problem(str(ticket.name))
		frappe.db.commit()
		return False
	sender = composed.letters[0].sender
	for letter in composed.letters:
		insert_plain(
			LEDGER,
			{
				"channel": channel.name,
				"dedupe_key": dedupe_key(letter.message_id),
				"message_key": message_key(letter.message_id),
				"message_id": letter.message_id,
				"direction": "Outgoing",
				"ticket": str(ticket.name),
				"communication": comm.name,
				"recipient": letter.recipient,
				"bcc": letter.bcc,
				"status": "Queued",
				"raw": letter.raw.decode("ascii"),
			},
		)
	for address, why in composed.refused:
		ledger_row(channel, ticket, comm, address, "Refused", why)
	comm.db_set(
		{
			"subject": composed.subject,
			"message_id": composed.letters[0].message_id,
			"sender": sender,
			"delivery_status": "Sending",
		}
	)
	frappe.db.commit()
	return True


def ledger_row(channel, ticket, comm, recipient: str, status: str, error: str) -> None:
	"""A row for what got no letter: an address refused, or a reply that could not be composed."""
	key = dedupe_key(f"{comm.name}:{status}:{recipient}:{frappe.generate_hash(length=8)}")
	insert_plain(
		LEDGER,
		{
			"channel": channel.name,
			"dedupe_key": key,
			"message_key": key,
			"direction": "Outgoing",
			"ticket": str(ticket.name),
			"communication": comm.name,
			"recipient": recipient,
			"status": status,
			"error": error,
		},
	)


def draft_for(comm, ticket, channel) -> ReplyDraft:
	forward = bool(ticket.forwarded_from) and is_first_letter(comm, ticket)
	source = ticket.forwarded_from if forward else str(ticket.name)
	earlier = by_people(source, earlier_messages(source, comm))
	thread = [] if forward else [m.message_id for m in earlier if m.message_id]  # oldest first
	images = inline_images(earlier)
	forwarded, left_out = forwarded_attachments(earlier, set(images)) if forward else ([], [])
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
		attachments=[*attachments_of(comm.name), *forwarded],
		history=quoted(earlier),
		inline_images=images,
		in_reply_to=thread[-1] if thread else "",
		references=thread,
		subject_prefix="Fwd:" if forward else ("Re:" if answers_client(earlier) else ""),
		notice=left_out_notice(left_out),
		language=quote_language(channel),
		zone=get_system_timezone(),
	)


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
			LEDGER,
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


def send_over_smtp(channel, rows) -> None:
	letters = [
		Letter.from_raw(r.recipient, channel.from_email, r.message_id, r.raw.encode(), bool(r.bcc))
		for r in rows
	]
	for row in rows:
		frappe.db.set_value(LEDGER, row.name, {"status": "Sending", "attempts": (row.attempts or 0) + 1})
	frappe.db.commit()
	by_id = {row.message_id: row for row in rows}
	try:
		with ca_file(channel) as ca:
			results = with_fresh_token(
				channel.outgoing_type, lambda refresh: send(smtp_settings(channel, ca, refresh), letters)
			)
	except MailError as exc:  # no session at all: nothing was handed over
		for row in rows:
			retry_later(row, str(exc))
		frappe.db.commit()
		return
	for result in results:
		row = by_id[result.message_id]
		if result.outcome == Outcome.SENT:
			frappe.db.set_value(LEDGER, row.name, {"status": "Sent", "error": None, "next_attempt_at": None})
		elif result.outcome == Outcome.TEMPORARY:
			retry_later(row, result.detail)
		elif result.outcome == Outcome.PERMANENT:
			frappe.db.set_value(LEDGER, row.name, {"status": "Failed", "error": result.detail})
		else:
			frappe.db.set_value(LEDGER, row.name, {"status": "Uncertain", "error": result.detail})
	frappe.db.commit()


def retry_later(row, error: str) -> None:
	"""Back off; after the last delay the failure is final and shows on the ticket."""
	attempt = (row.attempts or 0) + 1
	if attempt > len(RETRY_MINUTES):
		frappe.db.set_value(
			LEDGER,
			row.name,
			{"status": "Failed", "error": _("Gave up after {0} attempts: {1}").format(attempt, error)},
		)
		return
	frappe.db.set_value(
		LEDGER,
		row.name,
		{
			"status": "Temporary failure",
			"error": error,
			"next_attempt_at": add_to_date(now_datetime(), minutes=RETRY_MINUTES[attempt - 1]),
		},
	)


def hand_to_email_queue(channel, comm, rows) -> None:
	"""Internal outgoing: the site's own Email Queue sends the letters we composed, unchanged."""
	from frappe.email.doctype.email_account.email_account import EmailAccount

	account = EmailAccount.find_outgoing(match_by_email=channel.from_email, match_by_doctype="Ticket")
	if not account:
		for row in rows:
			frappe.db.set_value(
				LEDGER,
				row.name,
				{
					"status": "Failed",
					"error": _(
						"The site has no outgoing Email Account; set one up (Email Account, Default Outgoing) and use Retry Sending."
					),
				},
			)
		frappe.db.commit()
		return
	for row in rows:
		queue = frappe.get_doc(
			{
				"doctype": "Email Queue",
				"sender": channel.from_email,
				"message": row.raw,
				"message_id": row.message_id,
				"communication": comm.name,
				"reference_doctype": "Ticket",
				"reference_name": comm.reference_name,
				"email_account": account.name,
				"status": "Not Sent",
				"priority": 1,
				"add_unsubscribe_link": 0,  # a reply to a client, not a newsletter
				"recipients": [{"recipient": row.recipient, "status": "Not Sent"}],
			}
		).insert(ignore_permissions=True)
		frappe.db.set_value(LEDGER, row.name, {"status": "Handed to Email Queue", "email_queue": queue.name})
	frappe.db.commit()


def record_status(communication: str, ticket: str) -> None:
	"""The reply's delivery status from its letters, the ticket's status once a letter is out,
	and the ticket's list of delivery problems."""
	statuses = {row.status for row in letters_of(communication)} - {"Refused"}
	if statuses & set(PROBLEMS):
		status = "Error"
	elif statuses and statuses <= {"Sent"}:
		status = "Sent"
	elif "Handed to Email Queue" in statuses:
		status = None  # Frappe's Email Queue keeps the Communication's status from here on
	else:
		status = "Sending"
	if status:
		frappe.db.set_value("Communication", communication, "delivery_status", status)
	if statuses & set(DELIVERED):
		mark_replied(ticket, communication)
	record_problem(ticket)
	frappe.db.commit()


def mark_replied(ticket: str, communication: str) -> None:
	"""A ticket is Replied once a letter of a reply is out (a failed reply leaves it Open),
	unless the client wrote again after that reply."""
	sent_at = frappe.db.get_value("Communication", communication, "communication_date")
	row = frappe.db.get_value("Ticket", ticket, ["status", "first_response_at"], as_dict=True)
	values = {} if row.first_response_at else {"first_response_at": sent_at}
	newer = frappe.db.exists(
		"Communication",
		{
			"reference_doctype": "Ticket",
			"reference_name": ticket,
			"sent_or_received": "Received",
			"communication_date": (">", sent_at),
		},
	)
	if row.status == "Open" and not newer:
		values["status"] = "Replied"
	if values:
		frappe.db.set_value("Ticket", ticket, values, update_modified=False)


def record_problem(ticket: str) -> None:
	"""The banner on the ticket: letters that failed, wait or are uncertain, and addresses that
	were refused while they are still participants."""
	rows = frappe.get_all(
		LEDGER,
		filters={"ticket": ticket, "direction": "Outgoing", "status": ("in", SHOWN)},
		fields=["recipient", "status", "error", "communication"],
		order_by="creation asc",
	)
	participants = set(
		recipients_of(frappe.db.get_value("Ticket", ticket, ["client_email", "cc_addresses"], as_dict=True))
	)
	lines = [
		f"{_(r.status)}: {r.recipient or _('the reply')} ({r.communication}): {r.error or ''}".strip()
		for r in rows
		if r.status != "Refused" or r.recipient.lower() in participants
	]
	frappe.db.set_value(
		"Ticket", ticket, "delivery_problem", "\n".join(dict.fromkeys(lines)) or None, update_modified=False
	)


def retry_due() -> None:
	"""Scheduler, every minute: send again what is due, and try the Sent folder again."""
	for communication in {*due_replies(), *due_for_sent_folder()}:
		enqueue_send(communication)


def due_replies() -> list[str]:
	"""Replies with a letter whose temporary failure has waited long enough."""
	return frappe.get_all(
		LEDGER,
		filters={
			"direction": "Outgoing",
			"status": "Temporary failure",
			"next_attempt_at": ("<=", now_datetime()),
		},
		pluck="communication",
		distinct=True,
	)


def replies_with_problems(ticket: str) -> list[str]:
	return frappe.get_all(
		LEDGER,
		filters={"ticket": ticket, "direction": "Outgoing", "status": ("in", PROBLEMS)},
		pluck="communication",
		distinct=True,
	)


def retry_failed(communication: str) -> None:
	"""A person's decision: send the failed and the uncertain letters of a reply again (a
	reply that could not be composed is composed again)."""
	frappe.db.delete(
		LEDGER,
		{
			"communication": communication,
			"direction": "Outgoing",
			"status": "Failed",
			"raw": ("is", "not set"),
		},
	)
	frappe.db.set_value(
		LEDGER,
		{"communication": communication, "direction": "Outgoing", "status": ("in", PROBLEMS)},
		{"status": "Queued", "attempts": 0, "next_attempt_at": None, "error": None},
	)
	ticket = frappe.db.get_value("Communication", communication, "reference_name")
	record_problem(ticket)
	enqueue_send(communication)
