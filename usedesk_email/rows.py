"""Rows written without Frappe's document round trip, and the one place that says what that skips.

Ingestion writes Tickets, Communications, Files and ledger rows this way, because Frappe's
field validation, link checks and naming rules cost more than the rest of storing a message.
What is skipped, per doctype:

- every row: mandatory and link checks, naming rules, the length check of Data fields, and
  `_sanitize_content` (Frappe's XSS filtering of field values);
- Ticket: `validate`'s own rules run (participants, resolution time), and its insert events;
- Communication: everything but `after_insert` (the desk's live timeline, other apps' hooks);
  its timeline links are written by the ingestion in one INSERT per batch;
- File: the checks of an uploaded file's URL and path and the upload size limit (mail is
  capped by the message size of Email Channel Settings); its before_insert writes the bytes;
- ledger rows and timeline links: no document events at all.

What protects users is applied again here, to every value: short text fields are stored
with `<` and `>` as entities (the desk renders many of them as HTML, and Frappe's own
filter would keep `<img src=...>`), Data values are cut to their column, and HTML fields
must come sanitised by the mail engine (`html`), or get Frappe's own `sanitize_html`.
"""

import secrets
import time
from collections.abc import Callable

import frappe
from frappe.utils.html_utils import sanitize_html

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_HTML_TYPES = frozenset({"Text Editor", "HTML Editor", "HTML"})
# Short text the desk shows in lists, titles and timelines, often as HTML; Long Text, Code
# and the like are shown as text (or not at all) and keep their bytes.
_TEXT_TYPES = frozenset({"Data", "Small Text", "Text", "Select", "Link", "Dynamic Link", "Read Only"})


def sortable_name() -> str:
	"""A name for a new row that sorts after those made before it (milliseconds since 1970 in
	base 36, then 6 random characters): rows go in at one place of their table's primary key
	rather than at a random one, so writing to a table larger than the database's memory
	does not first read a random page of it from disk."""
	millis, stamp = time.time_ns() // 1_000_000, ""
	while millis:
		millis, digit = divmod(millis, 36)
		stamp = BASE36[digit] + stamp
	return stamp.rjust(9, "0") + "".join(secrets.choice(BASE36) for _ in range(6))


def as_text(value: str) -> str:
	"""Plain text as Frappe stores it from a form: no markup, `<` and `>` as entities."""
	return value.replace("<", "&lt;").replace(">", "&gt;") if "<" in value or ">" in value else value


def from_text(value: str) -> str:
	"""The text `as_text` stored, for a mail header."""
	return value.replace("&lt;", "<").replace("&gt;", ">")


def safe_values(doctype: str, values: dict, html: tuple[str, ...] = ()) -> dict:
	"""`values` as they may be stored: see the module's docstring."""
	meta = frappe.get_meta(doctype)
	safe = {}
	for fieldname, value in values.items():
		df = meta.get_field(fieldname)
		if isinstance(value, str) and df:
			if df.fieldtype in _HTML_TYPES:
				value = value if fieldname in html else sanitize_html(value)
			elif df.fieldtype in _TEXT_TYPES:
				value = as_text(value)
				if df.fieldtype == "Data":
					value = value[: df.length or frappe.db.VARCHAR_LEN]
		safe[fieldname] = value
	return safe


def insert_row(
	doctype: str,
	values: dict,
	before: tuple[str, ...] = (),
	after: tuple[str, ...] = (),
	flags: dict | None = None,
	html: tuple[str, ...] = (),
	prepare: Callable | None = None,
	owner: str | None = None,
):
	"""Insert a row of this app's own making without Frappe's document round trip.

	The document events named in `before` and `after` still run, with other apps' hooks,
	notifications and server scripts; `prepare` may change the document first, `owner` names
	who made it. A unique-index clash raises `frappe.UniqueValidationError`.
	"""
	doc = frappe.get_doc({"doctype": doctype, **safe_values(doctype, values, html)})
	doc.flags.update(flags or {})
	if prepare:
		prepare(doc)
	if not doc.name:
		doc.name = sortable_name()
	doc.set_user_and_timestamp()
	if owner:  # who the desk says made it ("client@example.org created this")
		doc.creation = doc.creation or doc.modified  # else db_insert stamps the session's user
		doc.owner = doc.modified_by = owner
	for event in before:
		doc.run_method(event)
	doc.db_insert()
	for event in after:
		doc.run_method(event)
	return doc


def insert_plain(doctype: str, *rows: dict) -> None:
	"""One INSERT of rows no document event watches (the ledger, timeline links); the rows
	give the same columns.

	Columns left out take their database defaults. A unique-index clash raises
	`frappe.UniqueValidationError`, as `insert_row` does.
	"""
	now, user = frappe.utils.now_datetime(), frappe.session.user
	stamp = {"creation": now, "modified": now, "owner": user, "modified_by": user}
	rows = [{"name": sortable_name(), **stamp, **safe_values(doctype, row)} for row in rows]
	columns = ", ".join(f"`{column}`" for column in rows[0])
	one_row = f"({', '.join(['%s'] * len(rows[0]))})"
	try:
		frappe.db.sql(
			f"INSERT INTO `tab{doctype}` ({columns}) VALUES {', '.join([one_row] * len(rows))}",
			tuple(value for row in rows for value in row.values()),
		)
	except Exception as e:
		if frappe.db.is_unique_key_violation(e):
			raise frappe.UniqueValidationError(doctype) from e
		raise


def update_row(doctype: str, name: str, **values) -> None:
	"""One UPDATE, without the query builder's per-call parsing: the ingestion hot path."""
	values = safe_values(doctype, values)
	columns = ", ".join(f"`{k}`=%s" for k in values)
	frappe.db.sql(f"UPDATE `tab{doctype}` SET {columns} WHERE name=%s", (*values.values(), name))


def without_upload_limit(file) -> None:
	"""Mail is capped by the message size of Email Channel Settings, not File's upload limit."""
	file.check_max_file_size = lambda: len(file._content or b"")
