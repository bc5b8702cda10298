# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""What the agent's inbox is made of, without a browser: the Ticket list's columns and order,
who waits since when, the saved views and the workspace's shortcuts (which must agree), the
chart, and a form opened before a reply went out."""

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime

import frappe
from frappe.desk.desktop import get_desktop_page, get_workspace_sidebar_items
from frappe.desk.form import assign_to
from frappe.tests.utils import FrappeTestCase
from frappe.utils import convert_utc_to_system_timezone, get_datetime

from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.outbound.delivery import send_communication
from usedesk_email.outbound.replies import create_reply
from usedesk_email.patches import ticket_waiting_times
from usedesk_email.testing.desk import desk_user, mail, make_channel, remove_channel_rows
from usedesk_email.testing.replies import ReplyFixture
from usedesk_email.ticket_views import ensure_saved_filters, own_view
from usedesk_email.usedesk_email.dashboard_chart_source.tickets_opened_and_answered import (
	tickets_opened_and_answered as chart_source,
)

AGENT = "inbox-agent@usedesk.test"
OTHER = "inbox-other@usedesk.test"
MANAGER = "inbox-manager@usedesk.test"
CHART = "Tickets Opened and Answered"


def date_of(ticket: str, field: str):
	return frappe.db.get_value("Ticket", ticket, field)


def local(header_date: str):
	"""A mail Date header as the site stores it (the system's time zone, naive)."""
	return convert_utc_to_system_timezone(parsedate_to_datetime(header_date)).replace(tzinfo=None)


class TestTicketList(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		for user, role in ((AGENT, "Support Agent"), (OTHER, "Support Agent"), (MANAGER, "Support Manager")):
			desk_user(user, role)
		frappe.db.commit()

	def setUp(self):
		self.channel = make_channel(f"inbox {frappe.generate_hash(length=6)}")
		frappe.db.commit()
		self.addCleanup(remove_channel_rows, self.channel.name)

	def ticket(self, subject: str, **kwargs) -> str:
		raw = mail(subject, message_id=f"{frappe.generate_hash(length=12)}@example.org", **kwargs)
		return str(ingest_raw(self.channel, raw, "test").ticket)

	def test_the_list_shows_the_client_and_their_last_message_and_sorts_by_last_activity(self):
		meta = frappe.get_meta("Ticket")
		self.assertEqual(
			[df.fieldname for df in meta.fields if df.in_list_view],
			["subject", "status", "client_email", "last_client_message_at"],
		)
		self.assertEqual((meta.sort_field, meta.sort_order), ("modified", "DESC"))
		self.assertTrue(meta.get_field("channel").in_standard_filter, "the channel stays a filter")
		self.assertEqual(
			{df.fieldname for df in meta.get_global_search_fields()},
			{"subject", "client_email", "client_name", "cc_addresses"},
		)

	def test_who_waits_since_when(self):
		sent = "Thu, 19 Nov 2026 09:00:00 +0000"
		ticket = self.ticket("Where is my parcel", date=sent)
		self.assertEqual(date_of(ticket, "waiting_since"), local(sent))
		self.assertEqual(date_of(ticket, "last_client_message_at"), local(sent))

		again = "Thu, 19 Nov 2026 11:00:00 +0000"
		first_id = frappe.db.get_value("Communication", {"reference_name": ticket}, "message_id")
		ingest_raw(self.channel, mail("Re: parcel", in_reply_to=first_id, date=again), "test")
		self.assertEqual(date_of(ticket, "waiting_since"), local(sent), "since the first unanswered")
		self.assertEqual(date_of(ticket, "last_client_message_at"), local(again))

		auto = mail(
			"Out of office",
			in_reply_to=first_id,
			date="Thu, 19 Nov 2026 12:00:00 +0000",
			headers={"Auto-Submitted": "auto-replied"},
		)
		ingest_raw(self.channel, auto, "test")
		self.assertEqual(date_of(ticket, "last_client_message_at"), local(again), "a machine is no client")

		doc = frappe.get_doc("Ticket", ticket)
		doc.status = "Resolved"
		doc.save()
		self.assertIsNone(doc.waiting_since, "nobody waits on a resolved ticket")
		frappe.db.commit()
		later = "Fri, 20 Nov 2026 08:00:00 +0000"
		ingest_raw(self.channel, mail("Re: parcel", in_reply_to=first_id, date=later), "test")
		self.assertEqual(
			frappe.db.get_value("Ticket", ticket, ["status", "waiting_since"]), ("Open", local(later))
		)

	def test_the_saved_views_and_the_workspace_shortcuts_pick_the_same_tickets(self):
		mine = self.ticket("Mine")
		theirs = self.ticket("Theirs")
		unassigned = self.ticket("Nobody's")
		once_assigned = self.ticket("Was mine")  # Frappe leaves "[]" behind
		resolved = self.ticket("Done")
		for ticket, user in ((mine, AGENT), (theirs, OTHER), (once_assigned, AGENT)):
			assign_to.add({"assign_to": [user], "doctype": "Ticket", "name": ticket}, ignore_permissions=True)
		assign_to.remove("Ticket", once_assigned, AGENT, ignore_permissions=True)
		frappe.db.set_value("Ticket", theirs, {"status": "Replied", "waiting_since": None})
		frappe.db.set_value("Ticket", resolved, {"status": "Resolved", "waiting_since": None})
		frappe.db.commit()
		expected = {
			"My open tickets": {mine},
			"Waiting for us": {mine, unassigned, once_assigned},
			"Unassigned": {unassigned, once_assigned},
			"All tickets": {mine, theirs, unassigned, once_assigned, resolved},
		}
		saved = {
			row.filter_name: json.loads(row.filters)
			for row in frappe.get_all(
				"List Filter",
				filters={"reference_doctype": "Ticket", "for_user": ("in", ["", AGENT])},
				fields=["filter_name", "filters"],
			)
		}
		self.assertEqual(saved["My open tickets"], own_view(AGENT))
		shortcuts = {
			s.label: s.stats_filter
			for s in frappe.get_doc("Workspace", "Helpdesk").shortcuts
			if s.link_to == "Ticket"
		}
		self.assertEqual(set(shortcuts), set(expected))
		frappe.set_user(AGENT)
		self.addCleanup(frappe.set_user, "Administrator")
		for name, tickets in expected.items():
			with self.subTest(view=name):
				self.assertEqual(self.of_channel(saved[name]), tickets, "saved filter")
				# the shortcut's filter is a JavaScript expression; this one names the user
				stats = shortcuts[name].replace('"%" + frappe.session.user + "%"', json.dumps(f"%{AGENT}%"))
				self.assertEqual(self.of_channel(json.loads(stats)), tickets, "workspace shortcut")

	def of_channel(self, filters) -> set[str]:
		if isinstance(filters, dict):
			filters = [
				["Ticket", field, *condition]
				if isinstance(condition, list)
				else ["Ticket", field, "=", condition]
				for field, condition in filters.items()
			]
		rows = frappe.get_list(
			"Ticket", filters=[*filters, ["Ticket", "channel", "=", self.channel.name]], pluck="name"
		)
		return {str(name) for name in rows}

	def test_a_user_given_a_support_role_gets_their_own_view(self):
		user = f"new-agent-{frappe.generate_hash(length=6)}@usedesk.test"
		self.addCleanup(frappe.delete_doc, "User", user, force=True)
		desk_user(user, None)
		self.assertFalse(frappe.db.exists("List Filter", {"for_user": user}))
		desk_user(user, "Support Agent")
		self.assertEqual(
			json.loads(frappe.db.get_value("List Filter", {"for_user": user}, "filters")), own_view(user)
		)
		ensure_saved_filters()  # again: nothing doubles
		self.assertEqual(frappe.db.count("List Filter", {"for_user": user}), 1)

	def test_agents_land_on_the_helpdesk_workspace_and_see_their_part_of_it(self):
		for user, channels in ((AGENT, False), (MANAGER, True)):
			with self.subTest(user=user):
				frappe.set_user(user)
				try:
					pages = [p.name for p in get_workspace_sidebar_items()["pages"]]
					page = get_desktop_page(
						json.dumps({"name": "Helpdesk", "title": "Helpdesk", "public": 1})
					)
				finally:
					frappe.set_user("Administrator")
				self.assertEqual(pages[0], "Helpdesk", "the first workspace is where the desk opens")
				labels = {s["label"] for s in page["shortcuts"]["items"]}
				self.assertLessEqual(
					{"My open tickets", "Waiting for us", "Unassigned", "All tickets"}, labels
				)
				self.assertEqual("Failing channels" in labels, channels, "agents may not read channels")
				self.assertEqual("Failed messages" in labels, channels)
				self.assertEqual([c.chart_name for c in page["charts"]["items"]], [CHART])

	def test_the_chart_counts_tickets_opened_and_answered_per_day(self):
		day = "2026-11-03"

		def counts() -> tuple[int, int]:
			frappe.set_user(AGENT)
			try:
				data = chart_source.get(
					chart_name=CHART,
					timespan="Select Date Range",
					time_interval="Daily",
					from_date=day,
					to_date=day,
				)
			finally:
				frappe.set_user("Administrator")
			self.assertEqual([d["name"] for d in data["datasets"]], ["Opened", "Answered"])
			return data["datasets"][0]["values"][-1], data["datasets"][1]["values"][-1]

		before = counts()
		tickets = [self.ticket(f"Chart {i}", date="Tue, 03 Nov 2026 12:00:00 +0000") for i in range(3)]
		frappe.db.set_value("Ticket", tickets[0], "first_response_at", get_datetime(f"{day} 15:00:00"))
		frappe.db.commit()
		self.assertEqual(counts(), (before[0] + 3, before[1] + 1))


class TestRepliesAndWaiting(ReplyFixture):
	def test_a_reply_that_goes_out_answers_what_came_before_it(self):
		self.assertTrue(date_of(self.ticket, "waiting_since"))
		self.reply_as(self.agent, "<p>On its way.</p>")
		self.assertEqual(
			frappe.db.get_value("Ticket", self.ticket, ["status", "waiting_since"]), ("Replied", None)
		)

	def test_a_reply_that_fails_leaves_the_client_waiting(self):
		waiting = date_of(self.ticket, "waiting_since")
		self.smtp.refuse["client@example.org"] = "550 5.1.1 no such user"
		self.smtp.refuse["boss@example.org"] = "550 5.1.1 no such user"
		self.smtp.refuse["archive@shop.example"] = "550 5.1.1 no such user"
		self.reply_as(self.agent, "<p>On its way.</p>")
		self.assertEqual(
			frappe.db.get_value("Ticket", self.ticket, ["status", "waiting_since"]), ("Open", waiting)
		)

	def test_a_form_opened_before_a_reply_went_out_cannot_save_over_it(self):
		form = self.form_before_sending("<p>On its way.</p>")
		self.assertEqual(frappe.db.get_value("Ticket", self.ticket, "status"), "Replied")
		form.cc_addresses = "colleague@example.org"
		with self.assertRaises(frappe.TimestampMismatchError):
			form.save()

	def test_a_form_opened_before_a_delivery_problem_cannot_save_it_away(self):
		"""Frappe's save writes every field, read-only ones too: without a new modified time
		the older form would erase the banner."""
		self.smtp.refuse["boss@example.org"] = "550 5.1.1 no such user <boss@example.org>"
		form = self.form_before_sending("<p>On its way.</p>")
		problem = date_of(self.ticket, "delivery_problem")
		self.assertIn("<boss@example.org>", problem, "the server's words, as they were")
		form.status = "Resolved"
		with self.assertRaises(frappe.TimestampMismatchError):
			form.save()
		self.assertEqual(date_of(self.ticket, "delivery_problem"), problem)

	def form_before_sending(self, content: str):
		"""The ticket as an agent's browser holds it after the reply is saved, before it goes out."""
		frappe.set_user(self.agent)
		try:
			answer = create_reply(self.ticket, content)
		finally:
			frappe.set_user("Administrator")
		frappe.db.commit()
		form = frappe.get_doc("Ticket", self.ticket)
		send_communication(answer["communication"])
		return form

	def test_the_patch_fills_old_tickets_as_the_rules_do(self):
		first_id = "k1@client.example"
		self.reply_as(self.agent, "<p>On its way.</p>")
		after_reply = [datetime.now(timezone.utc) + timedelta(seconds=i + 1) for i in range(2)]
		for when, headers in zip(after_reply, ({}, {"Auto-Submitted": "auto-replied"}), strict=True):
			raw = mail(
				"Re: Kettle broken",
				message_id=f"k-after-{frappe.generate_hash(length=8)}@client.example",
				in_reply_to=first_id,
				to="help@shop.example",
				date=format_datetime(when),
				headers=headers,
			)
			self.assertEqual(str(ingest_raw(self.channel, raw, "test").ticket), self.ticket)
		other = self.incoming("Another kettle", "k9@client.example")
		fields = ["name", "modified", "last_client_message_at", "waiting_since"]
		live = frappe.get_all("Ticket", {"name": ("in", [self.ticket, other])}, fields, order_by="name")
		self.assertEqual(live[0].waiting_since, local(format_datetime(after_reply[0])))
		frappe.db.sql(  # the old shape: the columns are new
			"UPDATE `tabTicket` SET last_client_message_at=NULL, waiting_since=NULL WHERE name IN (%s, %s)",
			(self.ticket, other),
		)
		frappe.db.commit()
		ticket_waiting_times.execute()
		self.assertEqual(
			frappe.get_all("Ticket", {"name": ("in", [self.ticket, other])}, fields, order_by="name"), live
		)
