"""What `uninstall-app` leaves on a site, and what `usedesk-email purge` takes away first.

Frappe drops the app's tables and DocTypes but nothing else. Kept after uninstall (the
customer's history): every ticket message as a plain Communication (its reference cleared,
the ticket token `[UD#n]` added to its subject so a ticket's messages can still be found
together, status Closed), its attachments (still attached to it), and the files of the app's
own documents, detached. Removed: the scheduled jobs, the index on `tabFile`, the roles when
nothing else uses them, the app's passwords, settings, list settings and ticket number
sequence, and what Frappe removes with any deleted document (comments, versions,
assignments, shares, follows, notifications, tags, timeline links) for every row of the
app's DocTypes. Purge deletes the conversations instead of keeping them.
"""

import json
from pathlib import Path

import click
import frappe
from frappe.query_builder.functions import Coalesce, Concat, Count

from usedesk_email.inbound.postfix import recipients_path
from usedesk_email.inbound.postfix_config import write_recipient_table
from usedesk_email.install import FILE_HASH_INDEX, ROLES

APP = "usedesk_email"
TICKET = "Ticket"
# The app's rows whose messages and files `purge` deletes; Email Channel stays.
CONVERSATION_DOCTYPES = ("Ticket", "Email Channel Message", "Email Channel Failure")
# Rows naming the app's DocTypes that are kept, their reference cleared (as Frappe's own
# delete_dynamic_links does for Communication and Activity Log): history, logs, and documents
# that only point somewhere with it (an Email Account appending to Ticket). The rest (comments,
# versions, assignments, customisations and reports of the app's DocTypes) are deleted.
KEEP_UNLINKED = (
	"Communication",
	"File",
	"Activity Log",
	"Email Queue",
	"Error Log",
	"Access Log",
	"Integration Request",
	"Email Account",
	"IMAP Folder",
	"User Type",
)
EXTRA_CLEARED = {"File": ("attached_to_field",)}
CHUNK = 500


def app_doctypes() -> list[str]:
	"""Read from the app's files: at after_uninstall the DocType records are already gone."""
	folder = Path(__file__).parent / "usedesk_email" / "doctype"
	return sorted(
		json.loads(p.read_text())["name"] for p in folder.glob("*/*.json") if p.parent.name == p.stem
	)


def before_uninstall() -> None:
	"""Say what is about to be kept. Frappe runs this hook in a dry run too, so it changes nothing."""
	kept = ticket_messages_count()
	click.echo(
		f"usedesk_email: {kept['communications']} ticket messages and {kept['files']} files are kept "
		"as plain Communications and Files; run `bench --site SITE usedesk-email purge` first to delete them."
	)


def after_uninstall() -> None:
	"""Clean up once Frappe has dropped the app's tables; a dry run (app still installed) is left alone."""
	if APP in frappe.get_installed_apps():
		return
	doctypes = app_doctypes()
	kept = ticket_messages_count()
	unlink_ticket_messages(doctypes)
	deleted = clear_references(doctypes, delete_kept=False)
	remove_own_rows(doctypes)
	remove_scheduled_jobs()
	remove_communication_grant()
	close_postfix_table()
	roles = remove_unused_roles()
	frappe.db.commit()
	cancel_queued_jobs()
	drop_schema_objects()
	frappe.clear_cache()
	in_use = [role for role in ROLES if frappe.db.exists("Role", role)]
	click.echo(
		f"usedesk_email: kept {kept['communications']} ticket messages and {kept['files']} files, unlinked; "
		f"deleted {deleted} rows that named its DocTypes, its passwords, settings and scheduled jobs, "
		f"the index {FILE_HASH_INDEX} on tabFile, roles: {', '.join(roles) or 'none'}"
		+ (f"; kept roles still in use: {', '.join(in_use)}" if in_use else "")
	)


def ticket_messages_count() -> dict:
	comms = frappe.db.count("Communication", {"reference_doctype": TICKET})
	file = frappe.qb.DocType("File")
	files = frappe.qb.from_(file).select(Count("*")).where(conversation_files(file)).run()[0][0]
	return {"communications": comms, "files": files}


def conversation_files(file):
	"""The condition on File that holds for the attachments of tickets and their messages."""
	comm = frappe.qb.DocType("Communication")
	ticket_messages = frappe.qb.from_(comm).select(comm.name).where(comm.reference_doctype == TICKET)
	return file.attached_to_doctype.isin(CONVERSATION_DOCTYPES) | (
		(file.attached_to_doctype == "Communication") & file.attached_to_name.isin(ticket_messages)
	)


def unlink_ticket_messages(doctypes: list[str]) -> None:
	"""Before the reference is cleared: the ticket's token joins the subject (searchable in
	the Communication list), and Linked becomes Closed, since a person answered them there."""
	comm = frappe.qb.DocType("Communication")
	token = Concat(" [UD#", comm.reference_name, "]")
	(
		frappe.qb.update(comm)
		.set(comm.subject, Concat(Coalesce(comm.subject, ""), token))
		.where((comm.reference_doctype == TICKET) & comm.reference_name.isnotnull())
		.where(Coalesce(comm.subject, "").not_like(Concat("%[UD#", comm.reference_name, "]%")))
	).run()
	(
		frappe.qb.update(comm)
		.set(comm.status, "Closed")
		.where(comm.reference_doctype.isin(doctypes) & (comm.status == "Linked"))
	).run()


def clear_references(doctypes, delete_kept: bool) -> int:
	"""Every row of another DocType that names one of `doctypes` in a DocType link field.

	KEEP_UNLINKED rows get the link (and its Dynamic Link names) cleared, or are deleted with
	`delete_kept`; all other rows (comments, versions, assignments, settings of those
	DocTypes) are deleted with their child rows, as Frappe does for one deleted document.
	Returns how many rows were deleted.
	"""
	doctypes = tuple(doctypes)
	count = 0
	for parent, field, names, single in doctype_link_fields():
		if parent in doctypes:
			continue
		if single:  # Customize Form, Bulk Update...: a value naming a DocType that is gone
			frappe.db.delete("Singles", {"doctype": parent, "field": field, "value": ("in", doctypes)})
			continue
		table = frappe.qb.DocType(parent)
		if parent in KEEP_UNLINKED and not delete_kept:
			query = frappe.qb.update(table).where(table[field].isin(doctypes))
			for cleared in (field, *names, *EXTRA_CLEARED.get(parent, ())):
				query = query.set(table[cleared], None)
			query.run()
			continue
		rows = frappe.qb.from_(table).select(table.name).where(table[field].isin(doctypes)).run(pluck=True)
		delete_rows(parent, rows)
		count += len(rows)
	return count


def doctype_link_fields() -> list[tuple[str, str, list[str], bool]]:
	"""(DocType, Link-to-DocType field, the Dynamic Link fields it names, is single) on this site."""
	fields = [
		f
		for f in fields_of_type("Link", "Dynamic Link")
		if f.fieldtype == "Dynamic Link" or f.options == "DocType"
	]
	tables = set(frappe.db.get_tables(cached=False))
	singles = set(frappe.get_all("DocType", filters={"issingle": 1}, pluck="name"))
	result = []
	for f in fields:
		if f.fieldtype != "Link" or (f"tab{f.parent}" not in tables and f.parent not in singles):
			continue
		names = [
			d.fieldname
			for d in fields
			if d.parent == f.parent and d.fieldtype == "Dynamic Link" and d.options == f.fieldname
		]
		result.append((f.parent, f.fieldname, names, f.parent in singles))
	return result


def fields_of_type(*fieldtypes: str) -> list:
	"""(parent, fieldname, fieldtype, options) of every field of these types, custom fields too."""
	wanted = {"fieldtype": ("in", fieldtypes)}
	standard = frappe.get_all(
		"DocField", filters=wanted, fields=["parent", "fieldname", "fieldtype", "options"]
	)
	custom = frappe.get_all(
		"Custom Field", filters=wanted, fields=["dt as parent", "fieldname", "fieldtype", "options"]
	)
	return standard + custom


def delete_rows(doctype: str, names: list[str]) -> None:
	"""Rows, their child rows and passwords, in chunks; no controller runs: the DocType they
	name is gone, and their on_trash would look for it."""
	if not names:
		return
	children = frappe.get_all(
		"DocField",
		filters={"parent": doctype, "fieldtype": ("in", ("Table", "Table MultiSelect"))},
		pluck="options",
		distinct=True,
	)
	for start in range(0, len(names), CHUNK):
		chunk = tuple(names[start : start + CHUNK])
		for child in children:
			frappe.db.delete(child, {"parenttype": doctype, "parent": ("in", chunk)})
		frappe.db.delete("__Auth", {"doctype": doctype, "name": ("in", chunk)})
		frappe.db.delete(doctype, {"name": ("in", chunk)})


def remove_own_rows(doctypes: list[str]) -> None:
	"""What the app's DocTypes left outside their tables: passwords (the channels' IMAP and
	SMTP passwords and inbound secrets: secrets must not outlive the app), the settings single,
	per-user list settings, permissions added in Customize Form, copies of deleted tickets
	(Deleted Document keeps the whole document: client addresses and all), the tickets'
	global search entries (their messages' text), and the patch log, so a later install
	runs the app's patches as a new install would."""
	doctypes = ("in", tuple(doctypes))
	frappe.db.delete("Deleted Document", {"deleted_doctype": doctypes})
	frappe.db.delete("Patch Log", {"patch": ("like", f"{APP}.%")})
	frappe.db.delete("__Auth", {"doctype": doctypes})
	frappe.db.delete("Singles", {"doctype": doctypes})
	frappe.db.delete("__UserSettings", {"doctype": doctypes})
	frappe.db.delete("Custom DocPerm", {"parent": doctypes})
	frappe.db.delete("DefaultValue", {"parent": doctypes})
	frappe.db.delete("__global_search", {"doctype": doctypes})
	frappe.cache.hdel("global_search", "search_priorities")  # Global Search Settings' cache


def remove_scheduled_jobs() -> None:
	"""Frappe drops stale job types only at the next migrate; until then the scheduler would
	run the app's polls against a site without its tables."""
	for name in frappe.get_all("Scheduled Job Type", filters={"method": ("like", f"{APP}.%")}, pluck="name"):
		frappe.db.delete("Scheduled Job Log", {"scheduled_job_type": name})
		frappe.db.delete("Scheduled Job Type", {"name": name})


def remove_communication_grant() -> None:
	"""The read permission on Communication the app gave its roles (install.grant_communication_read)."""
	frappe.db.delete("Custom DocPerm", {"parent": "Communication", "role": ("in", ROLES)})


def close_postfix_table() -> None:
	"""Postfix refuses every internal address from now on, rather than accept mail no one takes."""
	try:
		write_recipient_table(recipients_path(), [])
	except OSError as exc:
		click.echo(f"usedesk_email: the Postfix recipient table was not emptied ({exc})", err=True)


def remove_unused_roles() -> list[str]:
	"""The app's roles, with their assignments, unless something else still names them (a
	permission of another DocType, a page, a report, a role profile): then they stay."""
	removed = []
	for role in ROLES:
		if not frappe.db.exists("Role", role) or role_in_use(role):
			continue
		frappe.db.delete("Has Role", {"role": role, "parenttype": "User"})
		frappe.db.delete("Role", {"name": role})
		removed.append(role)
	return removed


def role_in_use(role: str) -> bool:
	tables = set(frappe.db.get_tables(cached=False))
	for f in fields_of_type("Link"):
		if f.options != "Role" or f"tab{f.parent}" not in tables or f.parent == "Role":
			continue
		table = frappe.qb.DocType(f.parent)
		query = frappe.qb.from_(table).select(table.name).where(table[f.fieldname] == role).limit(1)
		if f.parent == "Has Role":
			query = query.where(table.parenttype != "User")
		if query.run():
			return True
	singles = frappe.qb.DocType("Singles")
	return bool(frappe.qb.from_(singles).select(singles.field).where(singles.value == role).limit(1).run())


def cancel_queued_jobs() -> None:
	"""Polls and sends already waiting in the queues would fail on the dropped tables."""
	try:
		from frappe.utils.background_jobs import get_queues

		for queue in get_queues():
			for job in queue.get_jobs():
				kwargs = job.kwargs or {}
				name = str(kwargs.get("job_name") or kwargs.get("method") or "")
				if kwargs.get("site") == frappe.local.site and name.startswith(f"{APP}."):
					job.cancel()
	except Exception as exc:  # Redis down: nothing is queued that could run either
		click.echo(f"usedesk_email: queued jobs not checked ({type(exc).__name__}: {exc})", err=True)


def drop_schema_objects() -> None:
	"""The index the app added to Frappe's `tabFile`, and the Ticket number sequence (Frappe
	drops the table, not the sequence of an autoincrement DocType). DDL: after the commit."""
	if frappe.db.has_index("tabFile", FILE_HASH_INDEX):
		frappe.db.sql_ddl(f"ALTER TABLE `tabFile` DROP INDEX `{FILE_HASH_INDEX}`")
	frappe.db.sql_ddl(f"DROP SEQUENCE IF EXISTS {frappe.scrub(TICKET)}_id_seq")


# Purge: the conversations deleted instead of kept.


def purge_conversations() -> dict:
	"""Delete every ticket with its messages, their attachments (on disk too), the ledger and
	the failure log, and what Frappe keeps about those documents. Channels and settings stay.

	Files leave the disk only after the commit, and only when no File row still uses them:
	a rollback never leaves rows pointing at deleted files.
	"""
	counts = ticket_messages_count()
	files = purged_files()
	comms = frappe.get_all("Communication", filters={"reference_doctype": TICKET}, pluck="name")
	delete_rows("File", [f.name for f in files])
	delete_communications(comms)
	clear_references(CONVERSATION_DOCTYPES, delete_kept=True)
	counts["tickets"] = frappe.db.count(TICKET)
	for doctype in CONVERSATION_DOCTYPES:
		frappe.db.delete(doctype)
	frappe.db.delete("__global_search", {"doctype": TICKET})  # the messages' text is in it
	frappe.db.commit()
	for file in files:
		if not frappe.db.exists("File", {"file_url": file.file_url}):
			file.delete_file_data_content()
	return counts


def purged_files() -> list:
	file = frappe.qb.DocType("File")
	names = frappe.qb.from_(file).select(file.name).where(conversation_files(file)).run(pluck=True)
	return [frappe.get_doc("File", name) for name in names]


def delete_communications(names: list[str]) -> None:
	"""Ticket messages with their timeline links and what names them (comments on them,
	Email Queue and reply links are cleared)."""
	for start in range(0, len(names), CHUNK):
		chunk = tuple(names[start : start + CHUNK])
		frappe.db.delete("Comment", {"reference_doctype": "Communication", "reference_name": ("in", chunk)})
		queue, comm = frappe.qb.DocType("Email Queue"), frappe.qb.DocType("Communication")
		frappe.qb.update(queue).set(queue.communication, None).where(queue.communication.isin(chunk)).run()
		frappe.qb.update(comm).set(comm.in_reply_to, None).where(comm.in_reply_to.isin(chunk)).run()
		delete_rows("Communication", list(chunk))
