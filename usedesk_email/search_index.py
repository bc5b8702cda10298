"""Tickets in Frappe's global search: subject, client, participants and their messages' text.

Frappe indexes a saved document's `in_global_search` fields; a ticket's messages are
Communications, which global search never shows (Core DocTypes are refused), and the
ingestion saves neither tickets nor messages. So a ticket's entry is built here, from the
database: a commit that changed tickets names them in a Redis set and queues one job (a
flag with a timeout keeps it to one while it waits), which writes their entries off the
poll's path, right after Frappe's own queue of entries (`global_search_queue`, else flushed
by the scheduler every 15 minutes): the fields-only entry Frappe queues for a ticket saved
in a form never lands over the ticket's.

The desk puts an entry's text into its search results as HTML (between tags, never in an
attribute): `<`, `>` and `&` are escaped here, since the text comes from mail.
"""

from html import escape, unescape

import frappe
from frappe.query_builder.functions import Coalesce, NullIf, Substring
from frappe.utils import strip_html_tags
from frappe.utils.global_search import sync_global_search, sync_values

from usedesk_email.db import from_text

# __global_search.content is a TEXT column (65,535 bytes); what does not fit is left out.
CONTENT_BYTES = 60_000
MESSAGE_CHARS = 4_000  # of one message; its quoted history repeats the earlier ones anyway
MESSAGES = 30  # the first message of a ticket and its newest ones: what a search looks for
CHUNK = 500  # tickets a query reads
FIELDS = ("subject", "client_email", "client_name", "cc_addresses")
SEPARATOR = " ||| "  # between the parts of an entry: Frappe's, which the desk splits on
QUEUED = "usedesk_email:search:tickets"  # the tickets to index (a Redis set)
JOB_WAITING = "usedesk_email:search:job"  # set while a job is queued and not yet started
JOB_TIMEOUT = 600  # seconds; a job lost with Redis or a worker is queued again after it


def index_on_commit(ticket: str | int) -> None:
	"""Index the ticket once the transaction that changed it commits (nothing on rollback)."""
	pending = getattr(frappe.local, "usedesk_search_pending", None)
	if pending is None or queue_pending not in frappe.db.after_commit._functions:
		pending = frappe.local.usedesk_search_pending = set()
		frappe.db.after_commit.add(queue_pending)
	pending.add(str(ticket))


def on_communication_trash(doc, method=None) -> None:
	"""A deleted message's text leaves its ticket's entry (doc event)."""
	if doc.reference_doctype == "Ticket" and doc.reference_name:
		index_on_commit(doc.reference_name)


def queue_pending() -> None:
	"""After the commit: Redis only (a write to the database now would leave a transaction
	open, in which Frappe refuses the next DDL). What is lost with Redis, `reindex_all` finds."""
	names = frappe.local.usedesk_search_pending
	frappe.local.usedesk_search_pending = None
	if not names or frappe.local.conf.get("disable_global_search"):
		return
	try:
		frappe.cache.sadd(QUEUED, *names)
		if frappe.cache.set(frappe.cache.make_key(JOB_WAITING), 1, nx=True, ex=JOB_TIMEOUT):
			frappe.enqueue("usedesk_email.search_index.index_queued", queue="short")
	except Exception:  # the mail is committed: a commit must not fail on its search entry
		frappe.logger("usedesk_email").exception("tickets not queued for global search: %s", names)


def index_queued() -> int:
	"""The job: index the queued tickets until none are left; returns how many."""
	frappe.cache.delete_value(JOB_WAITING)  # a commit from now on queues a job of its own
	count = 0
	while names := take(CHUNK):
		index(names)
		frappe.db.commit()
		count += len(names)
	return count


def take(count: int) -> list[str]:
	"""Up to `count` queued tickets, each taken once even with several jobs running."""
	names = []
	while len(names) < count and (name := frappe.cache.spop(QUEUED)):
		names.append(frappe.safe_decode(name))
	return names


def index(names: list[str]) -> None:
	"""Write the tickets' entries, after what waits in Frappe's queue (its fields-only entries
	of tickets saved in a form): those land first, so they never replace these."""
	sync_global_search()
	if values := entries(names):
		sync_values([tuple(value.values()) for value in values])


def entries(names: list[str]) -> list[dict]:
	"""The global search rows of these tickets, their values in the table's column order."""
	ticket = frappe.qb.DocType("Ticket")
	tickets = (
		frappe.qb.from_(ticket)
		.select(ticket.name, *(ticket[f] for f in FIELDS))
		.where(ticket.name.isin(names))
		.orderby(ticket.name)
	).run(as_dict=True)
	messages = messages_of([str(t.name) for t in tickets])
	labels = {f: frappe.get_meta("Ticket").get_label(f) for f in FIELDS}
	return [
		{
			"doctype": "Ticket",
			"name": str(t.name),
			"content": content(
				[(labels[f], from_text(t[f])) for f in FIELDS if t[f]]
				+ [(m.who, m.text) for m in messages.get(str(t.name), [])]
			),
			"published": 0,
			"title": from_text(t.subject or "")[: frappe.db.VARCHAR_LEN],
			"route": "",
		}
		for t in tickets
	]


def messages_of(tickets: list[str]) -> dict[str, list]:
	"""Per ticket, its first message and its newest (MESSAGES in all), newest first after
	the first, each as (who, text): the sender, and the text (the HTML as text where a
	message has no text, as agents' replies)."""
	if not tickets:
		return {}
	comm = frappe.qb.DocType("Communication")
	rows = (
		frappe.qb.from_(comm)
		.select(comm.name, comm.reference_name)
		.where(
			(comm.reference_doctype == "Ticket")
			& comm.reference_name.isin(tickets)
			& (comm.communication_type == "Communication")
		)
		.orderby(comm.communication_date)
		.orderby(comm.creation)
	).run(as_dict=True)
	by_ticket: dict[str, list[str]] = {}
	for row in rows:
		by_ticket.setdefault(row.reference_name, []).append(row.name)
	chosen = {ticket: names[:1] + names[1:][::-1][: MESSAGES - 1] for ticket, names in by_ticket.items()}
	text = NullIf(comm.text_content, "")
	texts = {
		row.name: row
		for row in frappe.qb.from_(comm)
		.select(
			comm.name,
			comm.sender,
			comm.sender_full_name,
			Substring(Coalesce(text, comm.content), 1, MESSAGE_CHARS * 4).as_("text"),
			text.isnull().as_("html"),
		)
		.where(comm.name.isin([name for names in chosen.values() for name in names] or [""]))
		.run(as_dict=True)
	}
	return {
		ticket: [
			frappe._dict(
				who=" ".join(filter(None, (from_text(texts[n].sender_full_name or ""), texts[n].sender))),
				text=(
					unescape(strip_html_tags(texts[n].text or "")) if texts[n].html else texts[n].text or ""
				)[:MESSAGE_CHARS],
			)
			for n in names
		]
		for ticket, names in chosen.items()
	}


def content(parts: list[tuple[str, str]]) -> str:
	"""`Label : value ||| ...` as Frappe writes it, escaped, whitespace folded, cut to fit."""
	out, size = [], 0
	for label, value in parts:
		text = escape(" ".join(f"{label} : {value}".split()).replace("|||", "| | |"), quote=False)
		room = CONTENT_BYTES - size - len(SEPARATOR) * bool(out)
		if len(text.encode()) > room:
			if text := cut(text, room):
				out.append(text)
			break
		out.append(text)
		size += len(SEPARATOR) * (len(out) > 1) + len(text.encode())
	return SEPARATOR.join(out)


def cut(text: str, size: int) -> str:
	"""At most `size` bytes of escaped text, never half a character or half an entity."""
	text = text.encode()[: max(size, 0)].decode(errors="ignore")
	amp = text.rfind("&")
	return text[:amp] if amp != -1 and ";" not in text[amp:] else text


def reindex_all() -> int:
	"""Every ticket again, in chunks (after `bench rebuild-global-search`, which knows only the
	fields); returns how many. `bench --site S execute usedesk_email.search_index.reindex_all`"""
	count, last = 0, 0
	while names := frappe.get_all(
		"Ticket", filters={"name": (">", last)}, order_by="name asc", limit=CHUNK, pluck="name"
	):
		index([str(n) for n in names])
		frappe.db.commit()
		count, last = count + len(names), names[-1]
	return count
