"""Store incoming mail in tickets: every message in exactly one ticket, exactly once.

The ledger (Email Channel Message) has a unique index on (channel, dedupe key); its row is
inserted first in the transaction, so a retry or a concurrent worker holding the same
message waits on that index and then fails as a duplicate instead of storing it twice.
"""

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import frappe
from frappe.core.doctype.file.utils import get_content_hash
from frappe.utils import convert_utc_to_system_timezone, now_datetime

from usedesk_email.channel_config import own_addresses
from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.quote_split import collapsed
from usedesk_email.mail.sanitize import sanitise_html
from usedesk_email.mail.thread_keys import find_token
from usedesk_email.participants import MAX_PARTICIPANTS, add_participants, split_lines
from usedesk_email.rows import insert_plain, insert_row, sortable_name, update_row, without_upload_limit
from usedesk_email.usedesk_email.doctype.ticket.ticket import communication_update

LEDGER = "Email Channel Message"
AUTOMATIC = (Kind.AUTO_REPLY, Kind.BOUNCE, Kind.FEEDBACK)
ATTACHMENTS_FOLDER = "Home/Attachments"  # made by Frappe's install, like its own attachments
SUBJECT_LENGTH = 998  # RFC 5322's line limit; longer subjects are cut, the raw mail is kept
# The HTML and the text of one message are each stored up to this size, or less when the
# database takes smaller statements (a quarter of max_allowed_packet, less 1 MB: escaping
# may double the bytes, and both go in one INSERT); a longer body is cut, with a note, and
# the original message is kept as a file on it.
BODY_MAX_BYTES = 4 * 1024 * 1024
ORIGINAL_NAME = "original-message.eml"
TICKET_COLUMNS = ", ".join(
	f"ticket.{column}"
	for column in ("name", "channel", "status", "first_response_at", "client_email", "cc_addresses")
)


@dataclass
class IngestResult:
	ticket: str | None = None
	communication: str | None = None
	duplicate: bool = False
	outcome: str = "stored"  # stored | duplicate | ignored:<why> | failed
	failure: str | None = None
	message_id: str = ""
	key: str = ""  # the ledger's dedupe key


def message_key(message_id: str) -> str:
	"""What threading looks a Message-ID up by, whoever sent it."""
	return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def dedupe_key(message_id: str, sender: str = "") -> str:
	"""What makes a message a duplicate: its Message-ID from the same sender, so a stranger who
	sends a Message-ID first cannot make the real message with it "a duplicate". Our own
	letters (no sender given) are keyed by their Message-ID alone."""
	return message_key(f"{message_id}\n{sender}" if sender else message_id)


def store(channel, msg: ParsedMessage, source: str) -> IngestResult:
	"""Decide where the message goes, then write: ledger row first, ticket, Communication.

	A duplicate fails on the ledger row before anything else is written, and before a new
	ticket takes its number (see `claim_ledger_row`).
	"""
	own = own_addresses(channel)
	sender = msg.sender.email.lower() if msg.sender else ""
	ticket, referred = find_ticket(channel, msg, sender)
	ledger = {
		"channel": channel.name,
		"dedupe_key": dedupe_key(msg.message_id, sender),
		"message_key": message_key(msg.message_id),
		"raw_sha256": msg.raw_hash,
		"message_id": msg.message_id,
		"direction": "Incoming",
		"kind": msg.kind.value,
		"imap_uid": source,
	}
	if sender in own:
		return ignore(ledger, ticket and ticket.name, "ignored:own-address")
	if msg.kind in AUTOMATIC and not ticket:
		return ignore(ledger, None, f"ignored:{msg.kind.value}")
	if msg.kind == Kind.BULK and not ticket and channel.bulk_mail == "Ignore":
		return ignore(ledger, None, "ignored:bulk")
	if not sender:
		raise ValueError("The message has no usable sender address (From); it cannot open or join a ticket.")

	previous = ticket.name if ticket and ticket.status == "Closed" and msg.kind not in AUTOMATIC else None
	new_ticket = not ticket or previous
	communication = sortable_name()
	name = claim_ledger_row(ledger, communication, None if new_ticket else ticket.name)
	participants = [] if msg.kind in AUTOMATIC else cc_participants(msg, own, sender)
	message_date = local_time(msg)
	if new_ticket:
		ticket = open_ticket(channel, msg, participants, name, previous or referred, message_date)
	else:
		known = {*split_lines(ticket.cc_addresses), (ticket.client_email or "").lower()}
		if set(participants) - known:  # the row is locked only when someone may be added
			add_participants(ticket.name, participants)
	add_communication(ticket, msg, communication, [sender, *participants], message_date)
	return IngestResult(ticket=name, communication=communication)


def claim_ledger_row(ledger: dict, communication: str, ticket: str | None) -> str:
	"""Insert the message's ledger row and return its ticket's name.

	For a new ticket the row goes in first and the number is taken after it, so a duplicate
	(which fails on the row's unique index) never uses up a ticket number.
	"""
	row = {**ledger, "name": sortable_name(), "communication": communication, "outcome": "stored"}
	insert_plain(LEDGER, {**row, "ticket": ticket})
	if ticket:
		return ticket
	number = ticket_number()
	update_row(LEDGER, row["name"], ticket=number)
	return number


def ticket_number() -> str:
	"""The next ticket number; numbers taken in a transaction that was rolled back (a batch
	written again without its failed message) are handed out again first, so they leave no
	gap. What is still unused when a transaction commits is given up."""
	numbers = getattr(frappe.local, "usedesk_ticket_numbers", None)
	if numbers is None:
		numbers = frappe.local.usedesk_ticket_numbers = frappe._dict(taken=[], spare=[])
	if release_ticket_numbers not in frappe.db.after_rollback._functions:
		frappe.db.after_rollback.add(release_ticket_numbers)
		frappe.db.after_commit.add(forget_ticket_numbers)
	number = numbers.spare.pop(0) if numbers.spare else str(frappe.db.get_next_sequence_val("Ticket"))
	numbers.taken.append(number)
	return number


def release_ticket_numbers() -> None:
	numbers = frappe.local.usedesk_ticket_numbers
	numbers.spare = sorted(numbers.spare + numbers.taken, key=int)
	numbers.taken = []


def forget_ticket_numbers() -> None:
	frappe.local.usedesk_ticket_numbers = None


def keep_differing_copy(channel, msg: ParsedMessage) -> str:
	"""A duplicate's bytes, kept beside the stored message when they differ from its own (a
	forged copy, another relay's headers): nothing received is lost. Returns its dedupe key."""
	key = dedupe_key(msg.message_id, msg.sender.email.lower() if msg.sender else "")
	rows = frappe.db.sql(
		f"SELECT communication, raw_sha256 FROM `tab{LEDGER}` WHERE channel=%s AND dedupe_key=%s",
		(channel.name, key),
		as_dict=True,
	)
	row = rows[0] if rows else None
	if row and row.communication and row.raw_sha256 and row.raw_sha256 != msg.raw_hash:
		copy = {"attached_to_doctype": "Communication", "attached_to_name": row.communication}
		if not frappe.db.exists("File", {**copy, "content_hash": get_content_hash(msg.raw)}):
			insert_mail_file(row.communication, f"duplicate-{msg.raw_hash[:12]}.eml", msg.raw)
	return key


def ignore(ledger: dict, ticket: str | None, outcome: str) -> IngestResult:
	insert_plain(LEDGER, {**ledger, "ticket": ticket, "outcome": outcome})
	return IngestResult(ticket=ticket, outcome=outcome)


def find_ticket(channel, msg: ParsedMessage, sender: str):
	"""By stored Message-IDs first (ours and the clients'), then by the ticket token.

	Returns (ticket, referred): the ticket the message joins (its name, channel, status,
	client and CC participants), or None; and the name of a ticket it referred to without
	being allowed in. Only the ticket's client or a participant joins it: a Message-ID or a
	token is easy to learn, and joining would put a stranger's Cc on the next reply. An
	auto-reply or bounce also joins by the Message-ID of one of our letters; it adds no one.
	"""
	ids = msg.thread_ids
	if msg.kind in (Kind.BOUNCE, Kind.FEEDBACK) and msg.bounced_message_id:
		ids = [msg.bounced_message_id, *ids]
	referred = None
	if ids:
		keys = [message_key(i) for i in ids]
		rows = frappe.db.sql(
			f"""SELECT ledger.message_key, ledger.direction, {TICKET_COLUMNS} FROM `tab{LEDGER}` ledger
			JOIN `tabTicket` ticket ON ticket.name = ledger.ticket
			WHERE ledger.channel=%s AND ledger.message_key IN %s""",
			(channel.name, keys),
			as_dict=True,
		)
		by_key: dict = {}
		for row in rows:
			by_key.setdefault(row.pop("message_key"), []).append(row)
		for row in (row for k in keys for row in by_key.get(k, ())):
			direction = row.pop("direction")
			if is_member(row, sender) or (msg.kind in AUTOMATIC and direction == "Outgoing"):
				return ticket_found(row), None
			referred = referred or str(row.name)
	ticket = ticket_by_token(channel, msg.subject)
	if ticket and is_member(ticket, sender):
		return ticket, None
	return None, referred or (ticket and ticket.name)


def is_member(ticket, sender: str) -> bool:
	"""The ticket's client or one of its participants."""
	return bool(sender) and (
		sender == (ticket.client_email or "").lower() or sender in split_lines(ticket.cc_addresses)
	)


def ticket_row(name: str):
	rows = frappe.db.sql(
		f"SELECT {TICKET_COLUMNS} FROM `tabTicket` ticket WHERE ticket.name=%s", (name,), as_dict=True
	)
	return ticket_found(rows[0]) if rows else None


def ticket_found(row):
	row.name = str(row.name)  # autoincrement names are numbers; links hold text
	return row


def ticket_by_token(channel, subject: str):
	name = find_token(subject)
	row = ticket_row(name) if name else None
	return row if row and row.channel == channel.name else None


def cc_participants(msg: ParsedMessage, own: set[str], sender: str) -> list[str]:
	seen: dict[str, None] = {}
	for address in [*msg.to, *msg.cc]:
		email = address.email.lower()
		if email and email not in own and email != sender:
			seen.setdefault(email, None)
	return list(seen)[:MAX_PARTICIPANTS]


def local_time(msg: ParsedMessage):
	if msg.date and msg.date_trusted:
		return convert_utc_to_system_timezone(msg.date).replace(tzinfo=None)
	return now_datetime()


def open_ticket(
	channel, msg: ParsedMessage, participants: list[str], name: str, previous: str | None, message_date
):
	sender: Address = msg.sender
	ticket = insert_row(
		"Ticket",
		{
			"name": int(name),
			"subject": (msg.subject or "").strip()[:SUBJECT_LENGTH] or frappe._("(no subject)"),
			"status": "Open",
			"channel": channel.name,
			"client_email": sender.email.lower(),
			"client_name": sender.name,
			"contact": contact_of(sender.email),
			"cc_addresses": "\n".join(participants),
			"opened_at": message_date,
			"last_message_at": message_date,
			"previous_ticket": previous,
		},
		before=("before_insert", "before_validate", "validate", "before_save"),
		after=("after_insert", "on_update"),  # assignment rules, notifications, other apps' hooks
		owner=sender.email.lower(),  # the client opened it, not the poll's Administrator or Guest
	)
	ticket.notify_update()  # the desk's Ticket list shows it at once
	ticket.run_method("on_change")  # milestone trackers, energy point rules
	return frappe._dict(name=name, status=ticket.status, first_response_at=None, is_new=True)


def contact_of(email: str) -> str | None:
	return next((name for doctype, name in timeline_links_of(email) if doctype == "Contact"), None)


def add_communication(ticket, msg: ParsedMessage, name: str, people: list[str], message_date) -> None:
	content, text = fitted_bodies(msg)
	if len(content) + len(text) < len(msg.new_html) + len(msg.quoted_html) + len(msg.text):
		keep_original(name, msg.raw)
	content = attach_files(name, msg, content)
	comm = insert_row(
		"Communication",
		{
			"name": name,
			"communication_type": "Communication",
			"communication_medium": "Email",
			"sent_or_received": "Received",
			"status": "Linked",  # what Frappe's own rules give a Communication with a reference
			"subject": (msg.subject or "")[:SUBJECT_LENGTH] or frappe._("(no subject)"),
			"content": content,
			"text_content": text,
			"sender": msg.sender.email,
			"sender_full_name": msg.sender.name or msg.sender.email,
			"recipients": ", ".join(a.email for a in msg.to),
			"cc": ", ".join(a.email for a in msg.cc),
			"message_id": msg.message_id,
			"communication_date": message_date,
			"reference_doctype": "Ticket",
			"reference_name": ticket.name,
			"has_attachment": 1 if msg.attachments or text is not msg.text else 0,
			"user": frappe.session.user,
		},
		html=("content",),  # sanitised by the engine
		owner=msg.sender.email.lower(),
	)
	comm.flags.in_receive = True
	comm.flags.usedesk_kind = msg.kind
	links = timeline_links(people)
	for doctype, link_name in links:
		comm.add_link(doctype, link_name)  # seen by the after_insert hooks
	values = communication_update(ticket.status, ticket.first_response_at, comm)
	if ticket.get("is_new"):
		values.pop("last_message_at", None)  # written with the ticket
	elif values:
		# A client's message changes the ticket: an open form must not save over it unawares.
		values["modified"] = now_datetime()
	if values:
		update_row("Ticket", ticket.name, **values)
		if not ticket.get("is_new"):
			ticket_changed(ticket.name, values["modified"])
	comm.run_method("after_insert")  # the desk's live timeline, and other apps' hooks
	pending_links().extend(
		{"parent": name, "parenttype": "Communication", "parentfield": "timeline_links"}
		| {"idx": idx, "link_doctype": doctype, "link_name": link_name}
		for idx, (doctype, link_name) in enumerate(links, 1)
	)


def ticket_changed(name: str, modified) -> None:
	"""What Frappe's notify_update says of a saved document: open forms learn they are stale
	(and refuse to save over the change), the Ticket list refreshes."""
	frappe.publish_realtime(
		"doc_update",
		{"modified": modified, "doctype": "Ticket", "name": name},
		doctype="Ticket",
		docname=name,
		after_commit=True,
	)
	frappe.publish_realtime(
		"list_update", {"doctype": "Ticket", "name": name, "user": frappe.session.user}, after_commit=True
	)


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
	packet = int(frappe.db.sql("SELECT @@max_allowed_packet")[0][0])
	return min(BODY_MAX_BYTES, max(packet // 4 - 1024 * 1024, 64 * 1024))


def cut_bytes(text: str, limit: int) -> str:
	return text.encode()[:limit].decode(errors="ignore")


def cut_note() -> str:
	return '<p class="usedesk-cut"><i>{}</i></p>'.format(
		frappe._(
			"This message was too long to show whole: it is cut here. The original is attached as {0}."
		).format(ORIGINAL_NAME)
	)


def keep_original(communication: str, raw: bytes) -> None:
	"""The whole message as received, beside a Communication whose bodies had to be cut."""
	insert_mail_file(communication, ORIGINAL_NAME, raw)


def timeline_links(people: list[str]) -> list[tuple[str, str]]:
	"""Timeline links as Frappe's own received mail gets them: the Contacts of the sender and
	of the people copied, and what those Contacts link to (a Customer, a Supplier), so the
	message shows on their timelines too."""
	return list(dict.fromkeys(link for email in people for link in timeline_links_of(email)))


def pending_links() -> list[dict]:
	"""Timeline link rows of the open transaction, written by one INSERT just before it
	commits (a batch of messages, one statement); a rollback drops them with the rest."""
	pending = getattr(frappe.local, "usedesk_pending_links", None)
	if pending is None:
		pending = frappe.local.usedesk_pending_links = []
		frappe.db.before_commit.add(write_pending_links)
		frappe.db.after_rollback.add(drop_pending_links)
	return pending


def write_pending_links() -> None:
	rows = frappe.local.usedesk_pending_links
	frappe.local.usedesk_pending_links = None
	if rows:
		insert_plain("Communication Link", *rows)


def drop_pending_links() -> None:
	frappe.local.usedesk_pending_links = None


def timeline_links_of(email: str) -> tuple[tuple[str, str], ...]:
	"""The Contact of an address (the first, as Frappe takes it) and what it links to."""
	email = email.lower()
	known = getattr(frappe.local, "usedesk_timeline_links", None)
	if known is None:
		return query_timeline_links({email}).get(email, ())
	if email not in known:
		load_timeline_links([email])
	return known[email]


def remember_timeline_links() -> None:
	"""From now until `forget_timeline_links`, an address's Contact is looked up once: a
	batch of mail looks up the addresses of all its messages in one query first."""
	if getattr(frappe.local, "usedesk_timeline_links", None) is None:
		frappe.local.usedesk_timeline_links = {}


def forget_timeline_links() -> None:
	frappe.local.usedesk_timeline_links = None


def load_timeline_links(emails: Iterable[str]) -> None:
	known = frappe.local.usedesk_timeline_links
	wanted = {email.lower() for email in emails if email} - known.keys()
	if wanted:
		found = query_timeline_links(wanted)
		known.update((email, found.get(email, ())) for email in wanted)


def query_timeline_links(emails: set[str]) -> dict[str, tuple[tuple[str, str], ...]]:
	rows = frappe.db.sql(
		"""SELECT contact.email_id, contact.parent, link.link_doctype, link.link_name
		FROM `tabContact Email` contact
		LEFT JOIN `tabDynamic Link` link ON link.parenttype='Contact' AND link.parent=contact.parent
		WHERE contact.email_id IN %s""",
		(list(emails),),
	)
	found: dict[str, list[tuple[str, str]]] = {}
	for email, contact, doctype, name in rows:
		links = found.setdefault(email.lower(), [("Contact", contact)])
		if contact == links[0][1] and doctype:
			links.append((doctype, name))
	return {email: tuple(links) for email, links in found.items()}


def attach_files(communication: str, msg: ParsedMessage, content: str) -> str:
	"""Private Files for the Communication about to be inserted; returns the content with
	inline `cid:` references pointing at them.

	Written before the Communication itself, so its content is final when inserted. The
	File's own events run (before_insert writes the bytes, or reuses a stored file of the same
	hash; storage apps hook after_insert); see `rows` for what is skipped.
	"""
	for attachment in msg.attachments:
		file = insert_mail_file(communication, attachment.safe_name, attachment.payload)
		if attachment.content_id:
			cid = re.compile(r"cid:\s*" + re.escape(attachment.content_id), re.IGNORECASE)
			content = cid.sub(file.file_url, content)
	return content


def insert_mail_file(communication: str, file_name: str, content: bytes):
	"""A private File from mail. What File refuses as such (an image that is none, for
	Frappe's EXIF stripping) is stored as plain bytes: an attachment never fails its message."""
	try:
		return insert_file(communication, file_name, content)
	except (frappe.QueryDeadlockError, frappe.QueryTimeoutError, frappe.UniqueValidationError):
		raise
	except (frappe.ValidationError, OSError, ValueError, SyntaxError):  # PIL's, before any write
		return insert_file(communication, f"{file_name}.bin", content)


def insert_file(communication: str, file_name: str, content: bytes):
	return insert_row(
		"File",
		{
			"file_name": file_name,
			"folder": ATTACHMENTS_FOLDER,
			"attached_to_doctype": "Communication",
			"attached_to_name": communication,
			"content": content,
			"is_private": 1,
		},
		before=("before_insert",),
		after=("after_insert",),
		flags={"ignore_duplicate_entry_error": True},  # two equal files in a letter are two files
		prepare=without_upload_limit,
	)
