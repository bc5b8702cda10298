# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import json
import os
import subprocess
import time
from email.message import EmailMessage

import frappe
from frappe.custom.doctype.property_setter.property_setter import make_property_setter
from frappe.desk.form.load import get_communications
from frappe.tests.utils import FrappeTestCase
from frappe.utils.background_jobs import get_redis_connection_without_auth

from usedesk_email.inbound.batch import IngestBatch, ingest_raw
from usedesk_email.inbound.failures import log_failure
from usedesk_email.inbound.poll import poll_channel
from usedesk_email.install import FILE_HASH_INDEX
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.thread_keys import ticket_token
from usedesk_email.testing.desk import (
	dovecot_channel,
	mail,
	messages_of,
	record_outgoing,
	run_site_script,
	start_site_script,
	tickets_of,
)
from usedesk_email.testing.dovecot import DovecotServer
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

EML = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "eml")


class TestTicketIngestion(FrappeTestCase):
	"""The scheduled poll against a real Dovecot: exactly once, threaded, nothing lost."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.server = DovecotServer().start()

	@classmethod
	def tearDownClass(cls):
		cls.server.stop()
		super().tearDownClass()

	def setUp(self):
		self.box = self.server.new_mailbox("ticket")
		self.channel = dovecot_channel(self.server, self.box, f"poll {self.box.user}")

	def deliver(self, raw: bytes, seen: bool = False):
		self.server.deliver(self.box.user, raw, seen=seen)

	def poll(self) -> dict:
		return poll_channel(self.channel.name)

	def test_mailbox_becomes_tickets_and_a_second_poll_adds_nothing(self):
		self.deliver(mail("Printer broken", message_id="a1@client.example"))
		self.deliver(
			mail("Re: Printer broken", message_id="a2@client.example", in_reply_to="a1@client.example")
		)
		self.deliver(mail("Invoice question", sender="other@example.net", message_id="b1@client.example"))
		self.deliver(mail("Already read", message_id="r1@client.example"), seen=True)

		outcome = self.poll()
		self.assertEqual(outcome["result"], "ok", outcome)
		self.assertEqual(outcome["stored"], 3)
		messages = messages_of(self.channel.name)
		self.assertEqual(len(messages), 3)
		by_id = {m.message_id: m.reference_name for m in messages}
		self.assertEqual(by_id["a1@client.example"], by_id["a2@client.example"])
		self.assertNotEqual(by_id["a1@client.example"], by_id["b1@client.example"])
		self.assertNotIn("r1@client.example", by_id)
		self.assertEqual(self.server.flags(self.box.user)[4], {"\\Seen"})
		self.assertTrue(all("\\Seen" in f for f in self.server.flags(self.box.user).values()))

		second = self.poll()
		self.assertEqual((second["stored"], second["duplicate"]), (0, 0))
		self.assertEqual(len(messages_of(self.channel.name)), 3)
		channel = frappe.get_doc("Email Channel", self.channel.name)
		self.assertEqual(channel.messages_ingested, 3)
		self.assertEqual(channel.consecutive_failures, 0)
		self.assertTrue(channel.last_poll_at)

	def test_message_stored_but_not_marked_seen_is_not_stored_again(self):
		raw = mail("Crash window", message_id="crash@client.example")
		self.deliver(raw)
		ingest_raw(self.channel, raw, "before the crash")  # committed, but \Seen never set
		self.assertFalse(self.server.flags(self.box.user)[1])
		outcome = self.poll()
		self.assertEqual((outcome["stored"], outcome["duplicate"]), (0, 1))
		self.assertEqual(len(messages_of(self.channel.name)), 1)
		self.assertEqual(self.server.flags(self.box.user)[1], {"\\Seen"})

	def test_worker_killed_between_commit_and_seen_causes_no_duplicate(self):
		self.deliver(mail("Killed worker", message_id="kill@client.example"))
		frappe.db.commit()
		child = run_site_script(
			f"""
			import os, signal
			import usedesk_email.inbound.poll as poll
			original = poll.drain
			def drain_then_die(*args, commit, **kwargs):
				def commit_then_die():
					commit()  # the batch is committed
					os.kill(os.getpid(), signal.SIGKILL)  # dies before \\Seen is set
				return original(*args, commit=commit_then_die, **kwargs)
			poll.drain = drain_then_die
			poll.poll_channel({self.channel.name!r})
			"""
		)
		self.assertEqual(child.returncode, -9, child.stderr)
		self.assertFalse(self.server.flags(self.box.user)[1], "killed before \\Seen: still unread")
		self.assertEqual(len(messages_of(self.channel.name)), 1)
		outcome = self.poll()
		self.assertEqual(outcome["duplicate"], 1)
		self.assertEqual(len(messages_of(self.channel.name)), 1)
		self.assertEqual(self.server.flags(self.box.user)[1], {"\\Seen"})

	def test_two_polls_at_once_store_each_message_once(self):
		for i in range(20):
			self.deliver(
				mail(f"Concurrent {i}", sender=f"c{i}@example.org", message_id=f"con{i}@client.example")
			)
		frappe.db.commit()
		script = f"""
			import usedesk_email.inbound.poll as poll
			print(poll.poll_channel({self.channel.name!r}))
			"""
		children = [start_site_script(script) for _ in range(2)]
		outputs = [child.communicate(timeout=180) for child in children]
		for child, (_out, err) in zip(children, outputs, strict=True):
			self.assertEqual(child.returncode, 0, err)
		self.assertEqual(len(messages_of(self.channel.name)), 20)
		self.assertEqual(len(frappe.get_all("Ticket", filters={"channel": self.channel.name})), 20)

	def test_concurrent_ingestion_of_one_message_bypassing_the_lock_stores_it_once(self):
		"""The unique index, not only the poll lock, keeps a message single."""
		raw = mail("Same message twice", message_id="twice@client.example")
		frappe.db.commit()
		script = f"""
			import frappe
			from usedesk_email.inbound.batch import ingest_raw
			channel = frappe.get_doc("Email Channel", {self.channel.name!r})
			print(ingest_raw(channel, {raw!r}, "race").outcome)
			"""
		children = [start_site_script(script) for _ in range(4)]
		results = [child.communicate(timeout=120) for child in children]
		for child, (_out, err) in zip(children, results, strict=True):
			self.assertEqual(child.returncode, 0, err)
		outcomes = [out.strip().splitlines()[-1] for out, _err in results]
		self.assertEqual(sorted(outcomes), ["duplicate", "duplicate", "duplicate", "stored"])
		self.assertEqual(len(messages_of(self.channel.name)), 1)

	def test_replies_thread_by_our_message_id_and_by_token_but_not_for_strangers(self):
		self.deliver(mail("Need a refund", message_id="t1@client.example"))
		self.poll()
		ticket = str(frappe.get_all("Ticket", filters={"channel": self.channel.name}, pluck="name")[0])
		token = ticket_token(ticket)
		# A reply to a letter of ours: its Message-ID is in the ledger.
		record_outgoing(self.channel.name, "ours-1@site.example", ticket)
		frappe.db.commit()
		self.deliver(
			mail("Re: Need a refund", message_id="t2@client.example", in_reply_to="ours-1@site.example")
		)
		self.deliver(mail(f"Still waiting {token}", message_id="t3@client.example"))
		self.deliver(mail(f"Hijack {token}", sender="stranger@evil.example", message_id="t4@client.example"))
		self.deliver(mail("Need a refund", sender="someone@else.example", message_id="t5@client.example"))
		self.poll()
		by_id = {m.message_id: m.reference_name for m in messages_of(self.channel.name)}
		self.assertEqual(by_id["t2@client.example"], ticket)
		self.assertEqual(by_id["t3@client.example"], ticket)
		self.assertNotEqual(by_id["t4@client.example"], ticket)
		self.assertNotEqual(by_id["t5@client.example"], ticket, "never merged by subject alone")

	def test_status_rules_and_noise(self):
		self.deliver(mail("Broken", message_id="s1@client.example", cc="boss@example.org, help@example.com"))
		self.poll()
		ticket = frappe.get_all("Ticket", filters={"channel": self.channel.name}, pluck="name")[0]
		doc = frappe.get_doc("Ticket", ticket)
		self.assertEqual(doc.cc_addresses, "boss@example.org", "the channel's own address is no participant")

		frappe.db.set_value("Ticket", ticket, "status", "Replied")
		frappe.db.commit()
		self.deliver(
			mail(
				"Out of office",
				message_id="s2@client.example",
				in_reply_to="s1@client.example",
				headers={"Auto-Submitted": "auto-replied"},
			)
		)
		self.deliver(
			mail(
				"Auto reply, no ticket",
				sender="robot@example.org",
				message_id="s3@client.example",
				headers={"Auto-Submitted": "auto-replied"},
			)
		)
		self.deliver(mail("Copy of our own", sender="help@example.com", message_id="s4@client.example"))
		outcome = self.poll()
		self.assertEqual(outcome["ignored"], 2, outcome)
		self.assertEqual(
			frappe.db.get_value("Ticket", ticket, "status"), "Replied", "auto-reply does not reopen"
		)
		self.assertEqual(len(frappe.get_all("Ticket", filters={"channel": self.channel.name})), 1)

		self.deliver(mail("Re: Broken", message_id="s5@client.example", in_reply_to="s1@client.example"))
		self.poll()
		self.assertEqual(frappe.db.get_value("Ticket", ticket, "status"), "Open", "the client reopens it")

		frappe.db.set_value("Ticket", ticket, "status", "Closed")
		frappe.db.commit()
		self.deliver(mail("Re: Broken", message_id="s6@client.example", in_reply_to="s1@client.example"))
		self.poll()
		follow_up = frappe.get_all("Ticket", filters={"previous_ticket": ticket}, pluck="name")
		self.assertEqual(len(follow_up), 1, "a message to a closed ticket opens a linked follow-up")
		self.assertEqual(frappe.db.get_value("Ticket", ticket, "status"), "Closed")

	def test_bounce_joins_the_ticket_of_the_bounced_letter(self):
		self.deliver(mail("Order 42", message_id="o1@client.example"))
		self.poll()
		ticket = frappe.get_all("Ticket", filters={"channel": self.channel.name}, pluck="name")[0]
		with open(os.path.join(EML, "dsn_bounce.eml"), "rb") as f:
			bounce = f.read()
		bounced_id = parse_message(bounce).bounced_message_id
		self.assertTrue(bounced_id)
		record_outgoing(self.channel.name, bounced_id, ticket)
		frappe.db.set_value("Ticket", ticket, "status", "Replied")
		frappe.db.commit()
		self.deliver(bounce)
		self.poll()
		self.assertEqual(len(frappe.get_all("Ticket", filters={"channel": self.channel.name})), 1)
		self.assertEqual(frappe.db.get_value("Ticket", ticket, "status"), "Replied")
		self.assertEqual(len(messages_of(self.channel.name)), 2)

	def test_a_new_ticket_runs_frappes_insert_events_and_reaches_the_desk_live(self):
		"""A Milestone Tracker on the ticket's status (it runs on on_change) records the
		opening, and the desk is told at once: the Ticket list, and the ticket's timeline."""
		tracker = frappe.get_doc(
			{"doctype": "Milestone Tracker", "document_type": "Ticket", "track_field": "status"}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		self.addCleanup(self.drop, "Milestone Tracker", tracker.name)
		events = get_redis_connection_without_auth().pubsub(ignore_subscribe_messages=True)
		events.subscribe("events")
		self.addCleanup(events.close)
		self.deliver(mail("Live", message_id=f"{self.box.user}-live@client.example"))
		self.assertEqual(self.poll()["stored"], 1)

		ticket = str(tickets_of(self.channel.name)[0])
		milestones = frappe.get_all(
			"Milestone",
			filters={"reference_type": "Ticket", "reference_name": ticket},
			fields=["track_field", "value", "milestone_tracker"],
		)
		self.assertEqual(
			milestones, [{"track_field": "status", "value": "Open", "milestone_tracker": tracker.name}]
		)
		comm = messages_of(self.channel.name)[0]
		expected = {("list_update", "Ticket", ticket), ("docinfo_update", f"doc:Ticket/{ticket}", comm.name)}
		seen = set()
		deadline = time.monotonic() + 10
		while not expected <= seen and time.monotonic() < deadline:
			if message := events.get_message(timeout=0.5):  # None: a subscription notice, or none yet
				event = json.loads(message["data"])
				body = event["message"]
				seen.add((event["event"], body.get("doctype"), str(body.get("name"))))
				seen.add((event["event"], event["room"], body.get("doc", {}).get("name")))
		self.assertLessEqual(expected, seen)

	def drop(self, doctype: str, name: str) -> None:
		frappe.delete_doc(doctype, name, ignore_permissions=True, force=True)
		frappe.db.commit()

	def test_rows_are_named_in_the_order_they_are_written(self):
		"""So a large tabCommunication is written at one end, not at random pages."""
		for n in range(4):
			self.deliver(mail(f"Order {n}", message_id=f"{self.box.user}-o{n}@client.example"))
			self.assertEqual(self.poll()["stored"], 1)
			time.sleep(0.002)  # names are ordered by the millisecond
		communications = frappe.get_all(
			"Communication",
			filters={"name": ("in", [m.name for m in messages_of(self.channel.name)])},
			fields=["name", "subject"],
			order_by="creation asc",
		)
		self.assertEqual([c.subject for c in communications], [f"Order {n}" for n in range(4)])
		names = [c.name for c in communications]
		self.assertEqual(names, sorted(names))
		ledger = frappe.get_all(
			CHANNEL_MESSAGE, filters={"channel": self.channel.name}, pluck="name", order_by="creation asc"
		)
		self.assertEqual(len(ledger), 4)
		self.assertEqual(ledger, sorted(ledger))

	def test_failing_message_is_logged_raw_and_the_others_are_ingested(self):
		no_sender = b"To: help@example.com\r\nSubject: Who am I\r\nMessage-ID: <nofrom@x>\r\n\r\nbody\r\n"
		self.deliver(mail("Fine before", message_id="f1@client.example"))
		self.deliver(no_sender)
		self.deliver(mail("Fine after", message_id="f2@client.example"))
		outcome = self.poll()
		self.assertEqual((outcome["stored"], outcome["failed"]), (2, 1), outcome)
		failure = frappe.get_last_doc("Email Channel Failure", filters={"channel": self.channel.name})
		self.assertIn("no usable sender", failure.error)
		self.assertEqual(failure.subject, "Who am I")
		stored = frappe.get_doc("File", {"file_url": failure.raw_file}).get_content()
		self.assertEqual(stored if isinstance(stored, bytes) else stored.encode(), no_sender)
		self.assertTrue(all("\\Seen" in f for f in self.server.flags(self.box.user).values()))

		failure.retry()
		failure.reload()
		self.assertEqual((failure.status, failure.attempts), ("Failed", 2), "still no sender: still failed")

	def test_a_message_failing_after_its_first_file_leaves_no_file_behind(self):
		"""An admin allows one attachment per Communication (Customize Form): a letter with two
		fails after its first file was written; the rollback deletes that file from disk."""
		property_setter = make_property_setter("Communication", None, "max_attachments", 1, "Int", True)
		frappe.db.commit()
		self.addCleanup(self.drop_property_setter, property_setter.name)
		first = f"{self.box.user}-first.bin"
		letter = EmailMessage()
		letter["From"], letter["To"] = "client@example.org", "help@example.com"
		letter["Subject"], letter["Message-ID"] = "Two files", f"<{self.box.user}-two@client.example>"
		letter.set_content("Two files.")
		for name in (first, "second.bin"):
			letter.add_attachment(
				os.urandom(2000), maintype="application", subtype="octet-stream", filename=name
			)
		self.deliver(mail("Fine before", message_id=f"{self.box.user}-b@client.example"))
		self.deliver(letter.as_bytes())
		self.deliver(mail("Fine after", message_id=f"{self.box.user}-a@client.example"))

		outcome = self.poll()
		self.assertEqual((outcome["stored"], outcome["failed"]), (2, 1), outcome)
		failure = frappe.get_last_doc("Email Channel Failure", filters={"channel": self.channel.name})
		self.assertIn("Maximum Attachment Limit", failure.error)
		self.assertFalse(frappe.get_all("File", filters={"file_name": first}))
		self.assertFalse(os.path.exists(frappe.get_site_path("private", "files", first)))
		self.assertEqual(len(messages_of(self.channel.name)), 2)

	def drop_property_setter(self, name: str) -> None:
		frappe.delete_doc("Property Setter", name, ignore_permissions=True)
		frappe.clear_cache(doctype="Communication")
		frappe.db.commit()

	def test_rewriting_a_batch_settles_a_message_another_worker_stored_meanwhile(self):
		"""After a failure the batch is written again; a message stored in its first pass may
		by then be a duplicate: a second worker was waiting for its key and stored it."""
		raced = mail("Raced", message_id=f"{self.box.user}-race@client.example")
		frappe.db.commit()
		batch = IngestBatch(self.channel)
		batch.add(raced, "first worker")  # not committed: holds the message's ledger key
		child = start_site_script(
			f"""
			import frappe
			from usedesk_email.inbound.batch import ingest_raw
			channel = frappe.get_doc("Email Channel", {self.channel.name!r})
			print(ingest_raw(channel, {raced!r}, "second worker").outcome)
			"""
		)
		self.wait_for_lock_wait(child)
		batch.add(b"Subject: no sender\r\n\r\nx\r\n", "first worker")  # fails: rollback, rewrite
		results = batch.commit()
		out, err = child.communicate(timeout=120)
		self.assertEqual(child.returncode, 0, err)
		self.assertEqual(out.strip().splitlines()[-1], "stored")
		self.assertEqual([r.outcome for r in results], ["duplicate", "failed"])
		self.assertEqual(len(messages_of(self.channel.name)), 1)

	def wait_for_lock_wait(self, child: subprocess.Popen, timeout: float = 60) -> None:
		"""Until the child's INSERT of the same ledger key is running (it cannot finish before
		this transaction ends): this site's own database user sees its own threads."""
		deadline = time.monotonic() + timeout
		while not frappe.db.sql(
			"""SELECT 1 FROM information_schema.PROCESSLIST
			WHERE ID != CONNECTION_ID() AND INFO LIKE 'INSERT INTO `tabEmail Channel Message`%%'"""
		):
			self.assertIsNone(child.poll(), "the second worker ended without waiting for the key")
			self.assertLess(time.monotonic(), deadline, "the second worker never waited for the key")
			time.sleep(0.05)

	def test_retry_stores_a_logged_message(self):
		raw = mail("Stored on retry", message_id="retry@client.example")
		name = log_failure(self.channel.name, raw, "IMAP UID 9", "OperationalError: database went away")
		frappe.db.commit()
		result = frappe.get_doc("Email Channel Failure", name).retry()
		self.assertEqual(result["outcome"], "stored")
		self.assertEqual(frappe.db.get_value("Email Channel Failure", name, "status"), "Retried")
		self.assertEqual(len(messages_of(self.channel.name)), 1)

	def test_attachments_and_inline_images_become_private_files(self):
		with open(os.path.join(EML, "inline_cid.eml"), "rb") as f:
			self.deliver(f.read())
		self.poll()
		comm = messages_of(self.channel.name)[0]
		files = frappe.get_all(
			"File",
			filters={"attached_to_doctype": "Communication", "attached_to_name": comm.name},
			fields=["file_url", "is_private"],
		)
		self.assertTrue(files)
		self.assertTrue(all(f.is_private for f in files))
		content = frappe.db.get_value("Communication", comm.name, "content")
		self.assertNotIn("cid:", content.lower())
		self.assertIn("/private/files/", content)

	def test_attached_files_are_written_once_per_content_and_kept_per_letter(self):
		payload = os.urandom(50_000)

		def letter(message_id: str, copies: int) -> bytes:
			msg = EmailMessage()
			msg["From"], msg["To"] = "client@example.org", "help@example.com"
			msg["Subject"], msg["Message-ID"] = "Logs attached", f"<{message_id}>"
			msg.set_content("The logs.")
			for n in range(copies):
				msg.add_attachment(
					payload, maintype="application", subtype="octet-stream", filename=f"log{n}.bin"
				)
			return msg.as_bytes()

		self.deliver(letter(f"{self.box.user}-f1@client.example", copies=2))
		self.deliver(letter(f"{self.box.user}-f2@client.example", copies=1))
		self.assertEqual(self.poll()["stored"], 2)

		files = frappe.get_all(
			"File",
			filters={
				"attached_to_doctype": "Communication",
				"attached_to_name": ("in", [m.name for m in messages_of(self.channel.name)]),
			},
			fields=["name", "file_url", "folder", "is_private", "file_size", "content_hash"],
		)
		self.assertEqual(len(files), 3, "two equal files in one letter are two attachments")
		self.assertEqual({f.folder for f in files}, {"Home/Attachments"})
		self.assertEqual({f.file_size for f in files}, {len(payload)})
		self.assertEqual(len({f.file_url for f in files}), 1, "the same bytes are stored on disk once")
		self.assertEqual(frappe.get_doc("File", files[0].name).get_content(), payload)
		# Finding the stored file of the same bytes is an index lookup, not a scan of tabFile.
		self.assertTrue(frappe.db.has_index("tabFile", FILE_HASH_INDEX))
		plan = frappe.db.sql(
			"EXPLAIN SELECT name FROM `tabFile` WHERE content_hash=%s", (files[0].content_hash,), as_dict=True
		)
		self.assertEqual(plan[0].key, FILE_HASH_INDEX)

	def test_contacts_are_linked_and_their_timelines_show_the_mail(self):
		known = f"known-{self.box.user}@example.org"
		copied = f"copied-{self.box.user}@example.org"
		contact = self.contact(
			known, links=[{"link_doctype": "Email Channel", "link_name": self.channel.name}]
		)
		copied_contact = self.contact(copied)
		self.deliver(
			mail("From a contact", sender=known, cc=copied, message_id=f"{self.box.user}-c1@x.example")
		)
		# In the same batch, a message that fails (no From): it is undone, links included
		self.deliver(
			f"Subject: No sender\r\nMessage-ID: <{self.box.user}-c3@x.example>\r\n\r\nx\r\n".encode()
		)
		stranger = f"stranger-{self.box.user}@example.org"
		self.deliver(mail("From a stranger", sender=stranger, message_id=f"{self.box.user}-c2@x.example"))
		outcome = self.poll()
		self.assertEqual((outcome["stored"], outcome["failed"]), (2, 1), outcome)

		tickets = frappe.get_all(
			"Ticket", filters={"channel": self.channel.name}, fields=["client_email", "contact"], as_list=True
		)
		self.assertEqual(dict(tickets), {known: contact.name, stranger: None})
		by_sender = {
			m.sender: m.name
			for m in frappe.get_all(
				"Communication",
				filters={"name": ("in", [m.name for m in messages_of(self.channel.name)])},
				fields=["name", "sender"],
			)
		}
		self.assertEqual(self.on_timeline("Contact", contact.name), {by_sender[known]})
		self.assertEqual(self.on_timeline("Contact", copied_contact.name), {by_sender[known]})
		self.assertEqual(
			self.on_timeline("Email Channel", self.channel.name),
			{by_sender[known]},
			"the contact's own links",
		)
		self.assertFalse(frappe.get_all("Communication Link", filters={"parent": by_sender[stranger]}))

	def test_a_contact_made_after_a_poll_is_linked_by_the_next_one(self):
		"""Contacts are looked up once per batch, not remembered across polls."""
		sender = f"later-{self.box.user}@example.org"
		self.deliver(mail("Before", sender=sender, message_id=f"{self.box.user}-l1@x.example"))
		self.assertEqual(self.poll()["stored"], 1)
		contact = self.contact(sender)
		self.deliver(mail("After", sender=sender, message_id=f"{self.box.user}-l2@x.example"))
		self.assertEqual(self.poll()["stored"], 1)
		after = frappe.db.get_value("Communication", {"message_id": f"{self.box.user}-l2@x.example"})
		self.assertEqual(self.on_timeline("Contact", contact.name), {after})
		self.assertEqual(
			frappe.db.get_value("Ticket", {"channel": self.channel.name, "subject": "After"}, "contact"),
			contact.name,
		)

	def on_timeline(self, doctype: str, name: str) -> set[str]:
		"""What the desk shows on that document's timeline: Frappe's own query, by Communication Link."""
		return {c.name for c in get_communications(doctype, name)}

	def contact(self, email: str, links: list | None = None):
		return frappe.get_doc(
			{
				"doctype": "Contact",
				"first_name": email.split("@")[0],
				"email_ids": [{"email_id": email, "is_primary": 1}],
				"links": links or [],
			}
		).insert(ignore_permissions=True)

	def test_undecodable_mail_is_stored_with_replacement_characters(self):
		with open(os.path.join(EML, "charset_misspelt.eml"), "rb") as f:
			self.deliver(f.read())
		outcome = self.poll()
		self.assertEqual(outcome["stored"], 1, outcome)

	def test_wrong_password_shows_on_the_channel_and_backs_off(self):
		self.channel.imap_password = "wrong-password-123"
		self.channel.save()
		for _ in range(3):
			outcome = self.poll()
			self.assertEqual(outcome["result"], "error")
		channel = frappe.get_doc("Email Channel", self.channel.name)
		self.assertEqual(channel.consecutive_failures, 3)
		self.assertNotIn("wrong-password-123", channel.last_error)
		self.assertTrue(channel.last_error)
		self.assertTrue(channel.next_poll_after, "repeated authentication failures back off")

	def test_unreachable_host_is_a_transient_error_without_backoff(self):
		self.channel.imap_port = self.server.ssl_port + 7919 if self.server.ssl_port < 50000 else 1
		self.channel.imap_password = self.box.password  # a changed port needs the password typed again
		self.channel.save()
		for _ in range(3):
			self.assertEqual(self.poll()["result"], "error")
		channel = frappe.get_doc("Email Channel", self.channel.name)
		self.assertEqual(channel.consecutive_failures, 3)
		self.assertFalse(channel.next_poll_after)
		self.assertTrue(channel.enabled)
