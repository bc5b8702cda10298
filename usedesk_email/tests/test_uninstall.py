# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Uninstall and purge, run as an admin runs them: `bench` commands against a second site.

Uninstalling the app from the site the tests run on would drop the tables under them, so
the commands run on a scratch site (`USEDESK_UNINSTALL_SITE`, default `uninstall.<this
site>`), created with the bench's database admin login (`root_login` / `root_password` in
common_site_config.json, or `USEDESK_DB_ROOT_USER` / `USEDESK_DB_ROOT_PASSWORD`) on first
use and kept for later runs. `fill_site` and
`inspect_site` below run inside that site through `bench execute`.
"""

import json
import os
import shutil
import subprocess
import sys
from email.message import EmailMessage

import frappe
from frappe.tests.utils import FrappeTestCase

APP = "usedesk_email"
JOBS = ("usedesk_email.inbound.poll.enqueue_polls", "usedesk_email.outbound.delivery.retry_due")
ROLES = ("Support Agent", "Support Manager")
SECRET = "uninstall-secret-" + "a" * 32


class TestUninstall(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.site = os.environ.get("USEDESK_UNINSTALL_SITE") or f"uninstall.{frappe.local.site}"
		if not os.path.isdir(os.path.join(frappe.local.sites_path, cls.site)):
			login = os.environ.get("USEDESK_DB_ROOT_USER") or frappe.conf.get("root_login")
			password = os.environ.get("USEDESK_DB_ROOT_PASSWORD") or frappe.conf.get("root_password")
			if not (login and password):
				raise RuntimeError(
					f"site {cls.site} does not exist and there is no database admin login to create it "
					"with (root_login/root_password in common_site_config.json, or USEDESK_DB_ROOT_USER/"
					"USEDESK_DB_ROOT_PASSWORD): create it, or name one in USEDESK_UNINSTALL_SITE"
				)
			cls.bench(
				"new-site", cls.site, "--admin-password", frappe.generate_hash(length=16),
				"--db-root-username", login, "--db-root-password", password, site=None, timeout=900,
			)  # fmt: skip
		else:
			cls.bench("migrate", timeout=900)  # kept from an earlier run: this checkout's schema

	def setUp(self):
		if not self.installed():
			self.bench("install-app", APP, timeout=900)

	def installed(self) -> bool:
		"""From the site's installed_apps (`list-apps` reads a list Frappe renews only on migrate)."""
		result = self.bench("execute", "frappe.get_installed_apps")
		return APP in json.loads(result.stdout.strip().splitlines()[-1])

	@classmethod
	def bench(
		cls, *args: str, site: str | None = "", stdin: str = "", timeout: int = 600, check: bool = True
	):
		"""A bench command on the scratch site, in its own process, as an admin types it."""
		command = [shutil.which("bench") or os.path.join(os.path.dirname(sys.executable), "bench")]
		if site is not None:
			command += ["--site", site or cls.site]
		result = subprocess.run(
			[*command, *args],
			input=stdin,
			capture_output=True,
			text=True,
			cwd=os.path.dirname(os.path.abspath(frappe.local.sites_path)),
			timeout=timeout,
		)
		if check and result.returncode:
			raise AssertionError(
				f"bench {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
			)
		return result

	def execute(self, function: str, **kwargs) -> dict:
		"""One of this module's functions inside the scratch site, in a process of its own that
		connects directly (`bench execute` refuses modules of an app the site no longer has)."""
		code = (
			"import json, sys, frappe\n"
			f"frappe.init(site={self.site!r}, sites_path='.')\n"
			"frappe.connect()\n"
			f"from {__name__} import {function}\n"
			f"result = {function}(**json.loads(sys.stdin.read()))\n"
			"frappe.db.commit()\n"
			"print(json.dumps(result, default=str))\n"
		)
		result = subprocess.run(
			[sys.executable, "-c", code],
			input=json.dumps(kwargs),
			capture_output=True,
			text=True,
			cwd=frappe.local.sites_path,
			timeout=300,
		)
		if result.returncode:
			raise AssertionError(f"{function} on {self.site} failed:\n{result.stderr}")
		return json.loads(result.stdout.strip().splitlines()[-1])

	def test_uninstall_keeps_the_conversations_unlinked_and_removes_the_rest(self):
		filled = self.execute("fill_site", marker=frappe.generate_hash(length=8), queue_poll=True)
		self.assertEqual(self.execute("inspect_site", **filled)["jobs"], sorted(JOBS))

		dry = self.bench("uninstall-app", APP, "--dry-run")
		self.assertTrue(self.installed(), dry.stdout)
		facts = self.execute("inspect_site", **filled)
		self.assertEqual(facts["jobs"], sorted(JOBS), "a dry run changes nothing")
		self.assertTrue(facts["index"])
		self.assertGreaterEqual(facts["job_logs"], 1)
		waiting = facts["queued"] == "queued"  # unless a worker serves this bench's queues
		self.assertGreaterEqual(facts["deleted_documents"], 1)
		self.assertGreaterEqual(facts["patch_log"], 1)
		self.assertGreaterEqual(facts["passwords"], 3)
		self.assertGreaterEqual(facts["search_entries"], 2, "the tickets are in global search")
		for seen in ("Communication.reference_doctype", "Comment.reference_doctype", "ToDo.reference_type"):
			self.assertIn(seen, facts["references"], "the scan sees what names the app's DocTypes")

		out = self.bench("uninstall-app", APP, "--yes", "--no-backup").stdout
		self.assertRegex(out, r"kept \d+ ticket messages")
		self.assertFalse(self.installed())
		facts = self.execute("inspect_site", **filled)
		self.assertEqual(facts["tables"], [], "Frappe drops the app's tables")
		self.assertEqual(facts["jobs"], [])
		self.assertEqual(facts["job_logs"], 0)
		if waiting:
			self.assertEqual(
				facts["queued"], "canceled", "a poll already queued would fail on the dropped tables"
			)
		self.assertFalse(facts["index"], "the index on tabFile is dropped")
		self.assertFalse(facts["sequence"], "the ticket number sequence is dropped")
		self.assertEqual(facts["roles"], [])
		self.assertEqual(facts["role_assignments"], 0)
		self.assertEqual(facts["passwords"], 0, "channel passwords and inbound secrets are deleted")
		self.assertEqual(facts["singles"], 0)
		self.assertEqual(facts["deleted_documents"], 0, "no copies of deleted tickets")
		self.assertEqual(facts["patch_log"], 0)
		self.assertEqual(facts["user_settings"], 0)
		self.assertEqual(facts["search_entries"], 0, "no ticket's text is left in global search")
		self.assertEqual(facts["references"], {}, "no row anywhere names a DocType that is gone")

		# The conversation is kept as plain Communications, found by the ticket's token.
		for name, comm in facts["communications"].items():
			self.assertIsNone(comm["reference_doctype"], name)
			self.assertIsNone(comm["reference_name"], name)
			self.assertEqual(comm["status"], "Closed")
			self.assertIn(f"[UD#{filled['communications'][name]}]", comm["subject"])
			self.assertEqual(comm["subject"].count("[UD#"), 1, comm["subject"])
		self.assertEqual(len(facts["communications"]), 3)
		self.assertTrue(facts["contact_links"], "the messages stay on the client's Contact timeline")
		self.assertTrue(facts["saved"], "a kept Communication and File still validate and save")
		self.assertEqual(facts["listed"], 3, "Frappe's Communication list shows them")
		for name, file in facts["files"].items():
			self.assertTrue(file["on_disk"], name)
			if name == filled["failure_file"]:
				self.assertIsNone(file["attached_to_doctype"], "the raw mail of a failure is kept, detached")
			else:
				self.assertEqual(file["attached_to_doctype"], "Communication")
		self.assertEqual(len(facts["files"]), len(filled["files"]))

		# Reinstalling gives a working app again: roles, jobs, index, and new mail becomes a ticket.
		self.bench("install-app", APP, timeout=900)
		again = self.execute("fill_site", marker=frappe.generate_hash(length=8))
		facts = self.execute("inspect_site", **again)
		self.assertEqual(facts["jobs"], sorted(JOBS))
		self.assertTrue(facts["index"])
		self.assertEqual(facts["roles"], sorted(ROLES))
		self.assertEqual(len(again["tickets"]), 2)
		self.assertEqual(
			{c["reference_doctype"] for c in facts["communications"].values()}, {"Ticket"}, facts
		)

	def test_purge_deletes_the_conversations_and_their_files(self):
		filled = self.execute("fill_site", marker=frappe.generate_hash(length=8))

		refused = self.bench("usedesk-email", "purge", stdin="n\n", check=False)
		self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
		self.assertEqual(len(self.execute("inspect_site", **filled)["communications"]), 3)

		out = self.bench("usedesk-email", "purge", "--yes").stdout
		self.assertIn("Deleted", out)
		facts = self.execute("inspect_site", **filled)
		self.assertEqual(facts["communications"], {})
		self.assertEqual(facts["tickets"], 0)
		self.assertEqual(facts["search_entries"], 0, "their messages' text leaves global search")
		self.assertEqual(facts["failures"], 0)
		self.assertEqual(facts["files"], {}, "the File rows are deleted")
		shared = filled["paths"].pop(filled["shared_with"])
		self.assertEqual(len(filled["paths"]), 2)
		for path in filled["paths"].values():
			self.assertFalse(os.path.exists(os.path.join(frappe.local.sites_path, path)), path)
		self.assertTrue(facts["shared_file_on_disk"], "bytes another File still uses stay on disk")
		self.assertTrue(os.path.exists(os.path.join(frappe.local.sites_path, shared)))
		for field, named in facts["references"].items():
			self.assertEqual(
				set(named) & {"Ticket", "Email Channel Message", "Email Channel Failure"}, set(), field
			)
		self.assertEqual(facts["channels"], 2, "channels are configuration, not conversation")
		self.assertTrue(self.installed())


class TestRoleInUse(FrappeTestCase):
	"""Uninstall keeps a role that something besides user assignments still names."""

	def test_a_role_only_assigned_to_users_is_unused_until_a_permission_names_it(self):
		from usedesk_email.testing.desk import desk_user
		from usedesk_email.uninstall import role_in_use

		role = f"Uninstall Probe {frappe.generate_hash(length=6)}"
		frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(
			ignore_permissions=True
		)
		desk_user("uninstall-probe@usedesk.test", role)
		self.assertFalse(role_in_use(role))
		frappe.get_doc(
			{"doctype": "Custom DocPerm", "parent": "Note", "role": role, "read": 1, "permlevel": 0}
		).insert(ignore_permissions=True)
		self.assertTrue(role_in_use(role))
		self.assertTrue(role_in_use("Support Agent"), "the app's own DocTypes name it while installed")


# Run inside the scratch site through a direct connection (see TestUninstall.execute).


def fill_site(marker: str, queue_poll: bool = False) -> dict:
	"""Channels and tickets with messages, attachments, a failure, and the records Frappe and
	an admin add around them (comments, assignments, shares, versions, customisations)."""
	from frappe.custom.doctype.custom_field.custom_field import create_custom_field
	from frappe.custom.doctype.property_setter.property_setter import make_property_setter
	from frappe.desk.form.assign_to import add as assign
	from frappe.model.utils.user_settings import save as save_user_settings
	from frappe.model.utils.user_settings import sync_user_settings

	from usedesk_email.inbound.batch import ingest_raw
	from usedesk_email.inbound.failures import log_failure
	from usedesk_email.search_index import index_queued
	from usedesk_email.testing.desk import desk_user, make_channel

	frappe.set_user("Administrator")
	settings = frappe.get_single("Email Channel Settings")
	settings.inbound_domain = "inbound.example.com"
	settings.save()
	make_channel(f"external {marker}", imap_password="imap-" + marker)
	channel = make_channel(
		f"internal {marker}",
		incoming_type="Internal",
		main_email="support@shop.example",
		from_email="support@shop.example",
		inbound_secret=SECRET,
	)
	client = f"client-{marker}@example.org"
	if not frappe.db.exists("Contact", {"email_id": client}):
		contact = frappe.get_doc({"doctype": "Contact", "first_name": "Client"})
		contact.add_email(client, is_primary=1)
		contact.insert(ignore_permissions=True)

	first = letter(
		client,
		f"Kettle {marker}",
		f"k1-{marker}@example.org",
		attachment=marker.encode() * 100,
		filename="log.bin",
	)
	one = ingest_raw(channel, first, "test")
	reply = letter(
		client, f"Re: Kettle {marker}", f"k2-{marker}@example.org", reply_to=f"k1-{marker}@example.org"
	)
	ingest_raw(channel, reply, "test")
	lamp = letter(
		f"other-{marker}@example.org",
		f"Lamp {marker}",
		f"l1-{marker}@example.org",
		attachment=first,
		filename="letter.eml",
	)
	two = ingest_raw(channel, lamp, "test")
	failure = log_failure(channel.name, b"not really mail " + marker.encode(), "test", "boom")

	ticket = frappe.get_doc("Ticket", one.ticket)
	ticket.add_comment("Comment", "An agent's note")
	ticket.status = "Resolved"
	ticket.save(ignore_permissions=True)  # a Version
	agent = desk_user("uninstall-agent@usedesk.test", "Support Agent")
	desk_user("uninstall-manager@usedesk.test", "Support Manager")
	assign({"assign_to": [agent.name], "doctype": "Ticket", "name": ticket.name, "description": "Look"})
	frappe.share.add("Ticket", ticket.name, agent.name)
	frappe.log_error("A failed poll", reference_doctype="Ticket", reference_name=ticket.name)
	gone = frappe.get_doc(
		{"doctype": "Ticket", "subject": "deleted", "channel": channel.name, "client_email": client}
	).insert(ignore_permissions=True)
	frappe.delete_doc("Ticket", gone.name, ignore_permissions=True)  # a Deleted Document
	create_custom_field("Ticket", {"fieldname": "customer_ref", "label": "Customer Ref", "fieldtype": "Data"})
	make_property_setter("Ticket", "subject", "bold", 1, "Check")
	save_user_settings("Ticket", json.dumps({"List": {"order_by": "creation desc"}}))
	sync_user_settings()
	job_types = frappe.get_all("Scheduled Job Type", filters={"method": ("in", JOBS)}, pluck="name")
	frappe.get_doc(
		{"doctype": "Scheduled Job Log", "scheduled_job_type": job_types[0], "status": "Complete"}
	).insert(ignore_permissions=True)

	comms = frappe.get_all(
		"Communication",
		filters={"reference_doctype": "Ticket", "reference_name": ("in", [one.ticket, two.ticket])},
		fields=["name", "reference_name"],
	)
	files = frappe.get_all(
		"File",
		filters=[["attached_to_name", "in", [c.name for c in comms] + [failure]]],
		fields=["name", "file_url"],
	)
	# The same bytes kept by another File (Frappe stores equal content once): purge must leave them.
	attachment = next(f for f in files if f.file_url.endswith(".bin"))  # the Kettle's: .eml is Lamp's
	shared = frappe.get_doc(
		{
			"doctype": "File",
			"file_name": "kept.bin",
			"content": marker.encode() * 100,
			"is_private": 1,
			"attached_to_doctype": "User",
			"attached_to_name": agent.name,
		}
	).insert(ignore_permissions=True)
	assert shared.file_url == attachment.file_url, (shared.file_url, attachment.file_url)
	frappe.db.commit()
	index_queued()  # the search index job (no worker runs here)
	return {
		"marker": marker,
		"tickets": [one.ticket, two.ticket],
		"communications": {c.name: c.reference_name for c in comms},
		"files": [f.name for f in files],
		"paths": {f.name: frappe.get_doc("File", f.name).get_full_path() for f in files},
		"failure_file": frappe.db.get_value("File", {"attached_to_name": failure}, "name"),
		"shared_file": shared.name,
		"shared_with": attachment.name,
		"job_types": job_types,
		# A poll waiting in the queue (no worker runs here) when the app goes.
		"queued": frappe.enqueue(JOBS[0], queue="long", job_id=f"uninstall-{marker}").id
		if queue_poll
		else "",
	}


def letter(
	sender: str,
	subject: str,
	message_id: str,
	reply_to: str = "",
	attachment: bytes = b"",
	filename: str = "",
) -> bytes:
	msg = EmailMessage()
	msg["From"], msg["To"], msg["Subject"] = sender, "support@shop.example", subject
	msg["Message-ID"] = f"<{message_id}>"
	if reply_to:
		msg["In-Reply-To"] = msg["References"] = f"<{reply_to}>"
	msg.set_content("Hello, I need help.")
	if attachment:
		msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename=filename)
	return msg.as_bytes()


def inspect_site(
	marker: str, communications: dict, files: list, shared_file: str, job_types: list, queued: str, **_
) -> dict:
	"""What is left on the site, as facts the test compares."""
	from frappe.utils.background_jobs import get_redis_conn
	from rq.job import Job

	from usedesk_email.uninstall import app_doctypes, doctype_link_fields

	doctypes = tuple(app_doctypes())
	tables = set(frappe.db.get_tables(cached=False))
	references = {}
	for parent, field, _names, single in doctype_link_fields():
		if parent in doctypes:
			continue
		if single:
			named = frappe.db.sql_list(
				"SELECT value FROM `tabSingles` WHERE doctype=%s AND field=%s AND value IN %s",
				(parent, field, doctypes),
			)
		else:
			named = frappe.db.sql_list(
				f"SELECT `{field}` FROM `tab{parent}` WHERE `{field}` IN %s", (doctypes,)
			)
		if named:
			references[f"{parent}.{field}"] = sorted(set(named))
	comms = frappe.get_all(
		"Communication",
		filters={"name": ("in", list(communications))},
		fields=["name", "reference_doctype", "reference_name", "status", "subject"],
	)
	saved = False
	if comms:
		doc = frappe.get_doc("Communication", comms[0].name)
		doc.save(ignore_permissions=True)
		kept_file = frappe.get_all("File", filters={"name": ("in", files)}, pluck="name", limit=1)
		if kept_file:
			frappe.get_doc("File", kept_file[0]).save(ignore_permissions=True)
		saved = True
		frappe.db.rollback()
	kept_files = frappe.get_all(
		"File", filters={"name": ("in", files)}, fields=["name", "attached_to_doctype", "file_url"]
	)
	shared = frappe.get_doc("File", shared_file)
	return {
		"tables": sorted(d for d in doctypes if f"tab{d}" in tables),
		"jobs": sorted(
			frappe.get_all(
				"Scheduled Job Type", filters={"method": ("like", "usedesk_email.%")}, pluck="method"
			)
		),
		"job_logs": frappe.db.count("Scheduled Job Log", {"scheduled_job_type": ("in", job_types)}),
		"queued": Job.fetch(queued, connection=get_redis_conn()).get_status() if queued else None,
		"index": bool(frappe.db.has_index("tabFile", "usedesk_content_hash")),
		"sequence": bool(
			frappe.db.sql(
				"SELECT 1 FROM information_schema.tables WHERE table_schema=DATABASE() "
				"AND table_name='ticket_id_seq'"
			)
		),
		"roles": sorted(frappe.get_all("Role", filters={"name": ("in", ROLES)}, pluck="name")),
		"role_assignments": frappe.db.count("Has Role", {"role": ("in", ROLES)}),
		"passwords": frappe.db.sql("SELECT COUNT(*) FROM `__Auth` WHERE doctype IN %s", (doctypes,))[0][0],
		"singles": frappe.db.count("Singles", {"doctype": ("in", doctypes)}),
		"deleted_documents": frappe.db.count("Deleted Document", {"deleted_doctype": ("in", doctypes)}),
		"patch_log": frappe.db.count("Patch Log", {"patch": ("like", "usedesk\\_email.%")}),
		"user_settings": frappe.db.sql(
			"SELECT COUNT(*) FROM `__UserSettings` WHERE doctype IN %s", (doctypes,)
		)[0][0],
		"search_entries": frappe.db.sql(
			"SELECT COUNT(*) FROM `__global_search` WHERE doctype IN %s", (doctypes,)
		)[0][0],
		"references": references,
		"communications": {c.name: c for c in comms},
		"listed": len(frappe.get_list("Communication", filters={"subject": ("like", f"%{marker}%")})),
		"contact_links": frappe.db.count(
			"Communication Link", {"parent": ("in", list(communications) or ["-"]), "link_doctype": "Contact"}
		),
		"saved": saved,
		"files": {
			f.name: {
				"attached_to_doctype": f.attached_to_doctype,
				"on_disk": os.path.exists(frappe.get_doc("File", f.name).get_full_path()),
			}
			for f in kept_files
		},
		"shared_file_on_disk": os.path.exists(shared.get_full_path()),
		"tickets": frappe.db.count("Ticket") if "tabTicket" in tables else None,
		"failures": frappe.db.count("Email Channel Failure")
		if "tabEmail Channel Failure" in tables
		else None,
		"channels": frappe.db.count("Email Channel", {"name": ("like", f"%{marker}")})
		if "tabEmail Channel" in tables
		else None,
	}
