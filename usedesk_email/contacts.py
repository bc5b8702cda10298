"""The Contacts of mail addresses and what they link to: the timeline links a message gets,
as Frappe's own received mail gets them. A batch looks its addresses up in one query, and
its messages' link rows go in with one INSERT just before the commit."""

from collections.abc import Iterable

import frappe

from usedesk_email.db import insert_plain


def contact_of(email: str) -> str | None:
	return next((name for doctype, name in timeline_links_of(email) if doctype == "Contact"), None)


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
	contact, link = frappe.qb.DocType("Contact Email"), frappe.qb.DocType("Dynamic Link")
	rows = (
		frappe.qb.from_(contact)
		.left_join(link)
		.on((link.parenttype == "Contact") & (link.parent == contact.parent))
		.select(contact.email_id, contact.parent, link.link_doctype, link.link_name)
		.where(contact.email_id.isin(list(emails)))
	).run()
	found: dict[str, list[tuple[str, str]]] = {}
	for email, contact, doctype, name in rows:
		links = found.setdefault(email.lower(), [("Contact", contact)])
		if contact == links[0][1] and doctype:
			links.append((doctype, name))
	return {email: tuple(links) for email, links in found.items()}
