"""Tickets in Frappe's global search: subject, client, participants and their messages' text.

Frappe indexes a saved document's `in_global_search` fields; a ticket's messages are
Communications, which global search never shows (Core DocTypes are refused), and the
ingestion saves neither tickets nor messages. So a ticket's entry is built here, from the
database after the commit that changed it, and goes through Frappe's own queue
(`global_search_queue`, where the last entry of a document wins): it lands after the
fields-only entry Frappe queues for a ticket saved in a form, and is written at once.

The desk puts an entry's text into its search results as HTML (between tags, never in an
attribute): `<`, `>` and `&` are escaped here, since the text comes from mail.
"""

from html import escape, unescape

import frappe
from frappe.query_builder.functions import Substring
from frappe.utils import strip_html_tags
from frappe.utils.global_search import sync_global_search, sync_value_in_queue

from usedesk_email.db import from_text

# __global_search.content is a TEXT column (65,535 bytes); what does not fit is left out.
CONTENT_BYTES = 60_000
MESSAGE_CHARS = 4_000  # of one message; its quoted history repeats the earlier ones anyway
MESSAGES = 30  # the first message of a ticket and its newest ones: what a search looks for
CHUNK = 500  # tickets per batch of a re-index
FIELDS = ("subject", "client_email", "client_name", "cc_addresses")
SEPARATOR = " ||| "  # between the parts of an entry: Frappe's, which the desk splits on


def index_after_commit(ticket: str | int) -> None:
	"""Index the ticket once the transaction that changed it commits (nothing on rollback)."""
	pending = getattr(frappe.local, "usedesk_search_pending", None)
	if pending is None or index_pending not in frappe.db.after_commit._functions:
		pending = frappe.local.usedesk_search_pending = set()
		frappe.db.after_commit.add(index_pending)
	pending.add(str(ticket))


def index_pending() -> None:
	"""After a commit: the tickets it changed. What changed them is committed already: a
	failure here is logged (committed with the next transaction) and the ticket indexed again
	at its next change or by `reindex_all`."""
	names = frappe.local.usedesk_search_pending
	frappe.local.usedesk_search_pending = None
	if not names or frappe.local.conf.get("disable_global_search"):
		return
	try:
		index(sorted(names))
	except Exception:
		frappe.log_error(title=frappe._("Tickets could not be added to global search"))


def index(names: list[str]) -> None:
	"""Queue the tickets' entries after anything queued for them before, and write the queue."""
	for value in entries(names):
		sync_value_in_queue(value)
	sync_global_search()


def entries(names: list[str]) -> list[dict]:
	"""The global search rows of these tickets, as Frappe's queue takes them."""
	tickets = frappe.get_all(
		"Ticket", filters={"name": ("in", names)}, fields=["name", *FIELDS], order_by="name"
	)
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
	the first, each as (who, text): the sender and the text, HTML reduced to text."""
	if not tickets:
		return {}
	rows = frappe.get_all(
		"Communication",
		filters={
			"reference_doctype": "Ticket",
			"reference_name": ("in", tickets),
			"communication_type": "Communication",
		},
		fields=["name", "reference_name"],
		order_by="communication_date asc, creation asc",
	)
	by_ticket: dict[str, list[str]] = {}
	for row in rows:
		by_ticket.setdefault(row.reference_name, []).append(row.name)
	chosen = {ticket: names[:1] + names[1:][::-1][: MESSAGES - 1] for ticket, names in by_ticket.items()}
	comm = frappe.qb.DocType("Communication")
	texts = {
		row.name: row
		for row in frappe.qb.from_(comm)
		.select(
			comm.name,
			comm.sender,
			comm.sender_full_name,
			Substring(comm.text_content, 1, MESSAGE_CHARS).as_("text"),
			Substring(comm.content, 1, MESSAGE_CHARS * 4).as_("html"),
		)
		.where(comm.name.isin([name for names in chosen.values() for name in names] or [""]))
		.run(as_dict=True)
	}
	return {
		ticket: [
			frappe._dict(
				who=" ".join(filter(None, (from_text(texts[n].sender_full_name or ""), texts[n].sender))),
				text=(texts[n].text or unescape(strip_html_tags(texts[n].html or "")))[:MESSAGE_CHARS],
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
