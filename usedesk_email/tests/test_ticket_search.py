# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Tickets in Frappe's global search, as the desk's search asks it: by the client's address,
a number in the subject, words of any message (Russian too), an agent's reply."""

import random

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils.background_jobs import get_queue
from frappe.utils.global_search import search, sync_global_search

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.install import add_ticket_to_global_search
from usedesk_email.patches import tickets_in_global_search
from usedesk_email.search_index import CONTENT_BYTES, JOB_WAITING, MESSAGES, index_queued
from usedesk_email.testing.desk import desk_user, mail, make_channel, remove_channel_rows
from usedesk_email.testing.replies import ReplyFixture

AGENT = "search-agent@usedesk.test"
CYRILLIC = "абвгдежзиклмнопрстуфхцчшщэюя"


def word(prefix: str = "zq") -> str:
	"""A word no other row of the index holds (the full-text index needs at least 4 letters)."""
	return prefix + frappe.generate_hash(length=10)


def russian_word() -> str:
	return "".join(random.choice(CYRILLIC) for _ in range(10))


def entry(ticket) -> str | None:
	"""The ticket's row of the index, once the job the commits queued has run."""
	index_queued()
	table = frappe.qb.Table("__global_search")
	rows = (
		frappe.qb.from_(table)
		.select(table.content)
		.where((table.doctype == "Ticket") & (table.name == str(ticket)))
		.run()
	)
	return rows[0][0] if rows else None


def found(text: str, user: str = AGENT) -> list[str]:
	"""The tickets the desk's search shows `user` for `text`, best match first, once the job
	the commits queued has run (a worker runs it; none runs beside the tests)."""
	index_queued()
	frappe.set_user(user)
	try:
		return [r.name for r in search(text, limit=50) if r.doctype == "Ticket"]
	finally:
		frappe.set_user("Administrator")


def index_jobs() -> list:
	"""The index jobs of this site waiting in the queue."""
	return [
		job
		for job in get_queue("short").get_jobs()
		if (job.kwargs or {}).get("site") == frappe.local.site
		and (job.kwargs or {}).get("method") == "usedesk_email.search_index.index_queued"
	]


class TestTicketSearch(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		desk_user(AGENT, "Support Agent")
		frappe.db.commit()

	def setUp(self):
		self.channel = make_channel(f"search {frappe.generate_hash(length=6)}")
		frappe.db.commit()
		self.addCleanup(remove_channel_rows, self.channel.name)

	def ingest(self, raw: bytes):
		result = ingest_raw(self.channel, raw, "test")
		self.assertEqual(result.outcome, "stored", result)
		return result

	def test_found_by_client_address_order_number_and_russian_words_of_every_message(self):
		order, client, first, second = word("4"), word("anna"), russian_word(), russian_word()
		ticket = self.ingest(
			mail(
				f"Order {order} not delivered",
				sender=f"{client}@example.org",
				message_id=f"{client}-1@example.org",
				body=f"Здравствуйте, {first} посылка не пришла.",
			)
		).ticket
		reply = self.ingest(
			mail(
				f"Re: Order {order} not delivered",
				sender=f"{client}@example.org",
				message_id=f"{client}-2@example.org",
				in_reply_to=f"{client}-1@example.org",
				body=f"Жду ответа, {second}.",
			)
		)
		self.assertEqual(reply.ticket, ticket)
		for text in (order, first, second):
			with self.subTest(text=text):
				self.assertEqual(found(text), [str(ticket)])
		# other tickets share "example" and "org": the client's own comes first
		self.assertEqual(found(f"{client}@example.org")[0], str(ticket))
		self.assertEqual(found(order, user="Guest"), [], "guests find nothing")

	def test_commits_queue_one_job_that_indexes_their_tickets(self):
		index_queued()
		for job in index_jobs():
			job.delete()
		markers = [word(), word()]
		tickets = [self.ingest(mail(m, message_id=f"{m}@example.org", body=m)).ticket for m in markers]
		self.assertEqual(len(index_jobs()), 1, "one job for both commits while it waits")
		self.assertEqual(index_queued(), 2)
		self.assertIsNone(frappe.cache.get(frappe.cache.make_key(JOB_WAITING)))
		for marker, ticket in zip(markers, tickets, strict=True):
			self.assertEqual(found(marker), [str(ticket)])
		self.ingest(mail("Later", message_id=f"{word()}@example.org"))
		self.assertEqual(len(index_jobs()), 2, "a commit after the job started queues another")
		for job in index_jobs():
			job.delete()

	def test_a_form_save_keeps_the_messages_in_the_entry(self):
		"""Frappe queues a fields-only entry for every saved document; the ticket's own comes after it."""
		marker = word()
		ticket = self.ingest(
			mail("Kettle", message_id=f"{marker}@example.org", body=f"It {marker} leaks.")
		).ticket
		doc = frappe.get_doc("Ticket", ticket)
		doc.status = "Resolved"
		doc.save()
		frappe.db.commit()
		# written with the transaction, not after it: a write left open would make Frappe
		# refuse the next DDL (a custom field) with ImplicitCommitError
		self.assertEqual(frappe.db.transaction_writes, 0)
		sync_global_search()  # Frappe's own scheduled flush, in case anything was left queued
		self.assertIn(marker, entry(ticket))
		self.assertEqual(found(marker), [str(ticket)])

	def test_a_deleted_message_leaves_the_entry(self):
		first, second = word(), word()
		ticket = self.ingest(mail("Two", message_id=f"{first}@example.org", body=first)).ticket
		reply = self.ingest(
			mail(
				"Re: Two", message_id=f"{second}@example.org", in_reply_to=f"{first}@example.org", body=second
			)
		)
		self.assertEqual(found(second), [str(ticket)])
		frappe.delete_doc("Communication", reply.communication, ignore_permissions=True, force=True)
		frappe.db.commit()
		self.assertEqual(found(second), [])
		self.assertEqual(found(first), [str(ticket)])

	def test_a_rolled_back_change_is_not_indexed(self):
		marker = word()
		doc = frappe.get_doc(
			{"doctype": "Ticket", "subject": f"Draft {marker}", "channel": self.channel.name}
		).insert()
		frappe.db.rollback()
		frappe.db.commit()
		self.assertIsNone(entry(doc.name))
		self.assertEqual(found(marker), [])

	def test_mail_markup_is_text_in_the_entry(self):
		payload = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'
		ticket = self.ingest(
			mail(f"Hi {payload}", message_id=f"{word()}@example.org", body=f"Body {payload}")
		).ticket
		content = entry(ticket)
		self.assertNotIn("<", content)
		self.assertNotIn(">", content)
		self.assertIn("&lt;img src=x onerror=", content)
		self.assertIn("&amp;", content)

	def test_a_long_conversation_fits_with_its_first_and_newest_messages(self):
		markers = [word() for _ in range(MESSAGES + 5)]
		first = self.ingest(
			mail("Long", message_id=f"{markers[0]}@example.org", body=f"{markers[0]} " + "Я" * 3000)
		).ticket
		for i, marker in enumerate(markers[1:], 1):
			self.ingest(
				mail(
					"Re: Long",
					message_id=f"{marker}@example.org",
					in_reply_to=f"{markers[0]}@example.org",
					body=f"{marker} " + "ж" * 3000,
					date=f"Thu, 26 Nov 2026 10:{i:02d}:00 +0000",
				)
			)
		content = entry(first)
		self.assertLessEqual(len(content.encode()), CONTENT_BYTES)
		self.assertIn(markers[0], content, "the first message: what the ticket is about")
		self.assertIn(markers[-1], content, "the newest")
		self.assertNotIn(markers[1], content, "an old one in between makes room for the newest")
		self.assertEqual(found(markers[-1]), [str(first)])

	def test_ticket_is_in_global_search_settings_and_the_patch_indexes_old_tickets(self):
		settings = frappe.get_single("Global Search Settings")
		settings.allowed_in_global_search = [
			row for row in settings.allowed_in_global_search if row.document_type != "Ticket"
		]
		settings.save()
		markers = [word(), word()]
		tickets = [
			self.ingest(mail(f"Old {m}", message_id=f"{m}@example.org", body=f"Text {m}")).ticket
			for m in markers
		]
		# the old shape: what the ingestion stored was never indexed
		index_queued()
		frappe.db.delete("__global_search", {"doctype": "Ticket", "name": ("in", [str(t) for t in tickets])})
		frappe.db.commit()
		self.assertEqual(found(markers[0]), [])

		tickets_in_global_search.execute()
		add_ticket_to_global_search()  # twice: no second row
		doctypes = [
			row.document_type for row in frappe.get_single("Global Search Settings").allowed_in_global_search
		]
		self.assertEqual(doctypes.count("Ticket"), 1)
		for marker, ticket in zip(markers, tickets, strict=True):
			self.assertEqual(found(marker), [str(ticket)])


class TestRepliesInSearch(ReplyFixture):
	def test_an_agents_reply_is_found(self):
		marker = word()
		self.reply_as(self.agent, f"<p>Your refund {marker} is on its way.</p>")
		self.assertIn(marker, entry(self.ticket))
		self.assertEqual(found(marker, user=self.agent), [str(self.ticket)])
