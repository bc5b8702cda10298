"""The app's database helpers: rows written without Frappe's document round trip (and the
one place that says what that skips), session locks, the database's clock, and the only raw
SQL of the runtime.

Ingestion writes Tickets, Communications, Files and ledger rows this way, because Frappe's
field validation, link checks and naming rules cost more than the rest of storing a message.
What is skipped, per doctype (the events that do run are the `*_INSERT` lifecycles below,
which `tests/test_fast_paths.py` holds against what really runs):

- every row: mandatory and link checks, naming rules, the length check of Data fields, and
  `_sanitize_content` (Frappe's XSS filtering of field values);
- Ticket: its insert events run (`validate`'s own rules among them: participants,
  resolution time); a message to an existing ticket updates it with `update_row`, no event
  at all: what a message does to its ticket is `ticket.apply_message`, the same rules that
  `Ticket.on_communication_update` applies to documents saved by Frappe;
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

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import frappe
from frappe.utils.html_utils import sanitize_html

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_HTML_TYPES = frozenset({"Text Editor", "HTML Editor", "HTML"})
# Short text the desk shows in lists, titles and timelines, often as HTML; Long Text, Code
# and the like are shown as text (or not at all) and keep their bytes.
_TEXT_TYPES = frozenset({"Data", "Small Text", "Text", "Select", "Link", "Dynamic Link", "Read Only"})


@dataclass(frozen=True)
class Lifecycle:
	"""The document events a fast insert runs, in order; the rest of the lifecycle is skipped."""

	before: tuple[str, ...] = ()
	after: tuple[str, ...] = ()


# Assignment rules, notifications, milestone trackers and other apps' hooks see a new ticket.
TICKET_INSERT = Lifecycle(
	before=("before_insert", "before_validate", "validate", "before_save"),
	after=("after_insert", "on_update", "on_change"),
)
COMMUNICATION_INSERT = Lifecycle(after=("after_insert",))  # run once its links are added
FILE_INSERT = Lifecycle(before=("before_insert",), after=("after_insert",))


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
	lifecycle: Lifecycle,
	flags: dict | None = None,
	html: tuple[str, ...] = (),
	prepare: Callable | None = None,
	owner: str | None = None,
	defer_after: bool = False,
):
	"""Insert a row of this app's own making without Frappe's document round trip.

	The events of `lifecycle` still run, with other apps' hooks, notifications and server
	scripts (its `after` events later, by `run_after`, when `defer_after`); `prepare` may
	change the document first, `owner` names who made it. A unique-index clash raises
	`frappe.UniqueValidationError`.
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
	for event in lifecycle.before:
		doc.run_method(event)
	doc.db_insert()
	if not defer_after:
		run_after(doc, lifecycle)
	return doc


def run_after(doc, lifecycle: Lifecycle) -> None:
	for event in lifecycle.after:
		doc.run_method(event)
	# `set_user_and_timestamp` marked the row as being saved, as a save does, and a save
	# unmarks it at its end: a row left marked never gets a new modified time from db_set.
	if (doc.doctype, doc.name) in frappe.flags.currently_saving:
		frappe.flags.currently_saving.remove((doc.doctype, doc.name))


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
	"""One UPDATE, without the query builder's per-call parsing: the ingestion hot path (the
	same goes for `insert_plain`'s INSERT: one statement for many rows, which the ORM lacks)."""
	values = safe_values(doctype, values)
	columns = ", ".join(f"`{k}`=%s" for k in values)
	frappe.db.sql(f"UPDATE `tab{doctype}` SET {columns} WHERE name=%s", (*values.values(), name))


def without_upload_limit(file) -> None:
	"""Mail is capped by the message size of Email Channel Settings, not File's upload limit."""
	file.check_max_file_size = lambda: len(file._content or b"")


def max_allowed_packet() -> int:
	"""The largest statement the database takes; the query builder has no word for it."""
	return int(frappe.db.sql("SELECT @@max_allowed_packet")[0][0])


@contextmanager
def named_lock(kind: str, key: str) -> Iterator[bool]:
	"""A database session lock, never waited for: yields whether this session holds it. The
	server releases it when the worker dies, on whichever machine it ran. Raw SQL: neither the
	ORM nor the query builder knows MariaDB's GET_LOCK or Postgres' advisory locks."""
	name = f"{kind}_" + hashlib.sha1(f"{frappe.local.site}:{key}".encode()).hexdigest()
	if frappe.db.db_type == "postgres":
		number = int(hashlib.sha1(name.encode()).hexdigest()[:15], 16)
		acquired = frappe.db.sql("select pg_try_advisory_lock(%s)", number)[0][0]
		release = ("select pg_advisory_unlock(%s)", number)
	else:
		acquired = frappe.db.sql("select get_lock(%s, 0)", name)[0][0]
		release = ("select release_lock(%s)", name)
	try:
		yield bool(acquired)
	finally:
		if acquired:
			frappe.db.sql(*release)


def database_now() -> datetime:
	"""The database server's clock: the one clock that processes on different machines share
	(the listeners' leases run by it). Raw SQL: the query builder has no bare SELECT NOW()."""
	query = "select localtimestamp" if frappe.db.db_type == "postgres" else "select now(6)"
	return frappe.db.sql(query)[0][0]
