# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Leases on the database itself: who holds a channel, renewals, expiry, the listener list.
No listener runs here; `now` is the database's clock, moved forward where a lease must run out."""

import json
import time
from datetime import timedelta

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.db import database_now
from usedesk_email.inbound import leases
from usedesk_email.inbound.listen import Held, Listener
from usedesk_email.testing.desk import make_channel, start_site_script

LATER = leases.LEASE + timedelta(seconds=1)


class TestLeases(FrappeTestCase):
	def setUp(self):
		self.names = [make_channel(f"lease {n} {frappe.generate_hash(length=6)}").name for n in range(4)]
		self.a, self.b = (
			f"test-{n}:{pid}:{frappe.generate_hash(length=6)}" for n, pid in (("a", 11), ("b", 12))
		)
		frappe.db.commit()

	def tearDown(self):
		for name in self.names:
			frappe.delete_doc("Email Channel", name, force=True, ignore_permissions=True)
		frappe.db.delete("Email Channel Listener", {"name": ("like", "test-%")})
		frappe.db.commit()

	def test_a_held_channel_is_not_taken_until_its_lease_runs_out(self):
		now = database_now()
		self.assertEqual(sorted(leases.claim(self.a, self.names[:3], now)), sorted(self.names[:3]))
		self.assertEqual(leases.claim(self.b, self.names, now), [self.names[3]])
		self.assertEqual(leases.claim(self.b, self.names[:1], now + leases.LEASE / 2), [])

		taken = leases.claim(self.b, self.names[:1], now + LATER)
		self.assertEqual(taken, self.names[:1], "a lease not renewed in time is free")
		self.assertEqual(sorted(leases.renew(self.a, now + LATER)), sorted(self.names[1:3]))
		self.assertEqual(
			frappe.db.get_value("Email Channel", self.names[0], "listener"),
			self.b,
			"the loser renews nothing",
		)

	def test_listeners_claiming_at_once_never_share_a_channel(self):
		start = time.time() + 8  # all processes claim at this moment
		code = f"""
			import json, time
			from usedesk_email.db import database_now
			from usedesk_email.inbound import leases
			now = database_now()
			early = {start} - time.time()
			time.sleep(max(0, early))
			print(json.dumps([early > 0, leases.claim(HOLDER, {self.names!r}, now)]))
		"""
		holders = [f"test-{n}:{n}:{frappe.generate_hash(length=6)}" for n in range(3)]
		children = [start_site_script(code.replace("HOLDER", repr(holder))) for holder in holders]
		claimed = []
		for child in children:
			out, err = child.communicate(timeout=120)
			self.assertEqual(child.returncode, 0, err)
			early, names = json.loads(out.strip().splitlines()[-1])
			self.assertTrue(early, "the process was ready before the others claimed")
			claimed.append(names)
		everything = [name for names in claimed for name in names]
		self.assertEqual(sorted(everything), sorted(self.names), f"each channel exactly once: {claimed}")

	def test_release_and_a_dead_listeners_live_channels(self):
		now = database_now()
		leases.claim(self.a, self.names, now)
		frappe.db.set_value("Email Channel", {"name": ("in", self.names)}, "live_state", "Live")
		leases.release(self.a, self.names[:1])
		row = frappe.db.get_value("Email Channel", self.names[0], ["listener", "lease_until", "live_state"])
		self.assertEqual(row, (None, None, "Polling"))

		leases.mark_unheld(now)
		self.assertEqual(frappe.db.get_value("Email Channel", self.names[1], "live_state"), "Live")
		leases.mark_unheld(now + LATER)
		self.assertEqual(frappe.db.get_value("Email Channel", self.names[1], "live_state"), "Polling")

	def test_the_listener_list_counts_the_living(self):
		now = database_now()
		self.assertEqual(leases.heartbeat(self.a, now, channels=3, live=2), 1)
		self.assertEqual(leases.heartbeat(self.b, now, channels=1, live=1), 2)
		self.assertEqual(leases.heartbeat(self.a, now + LATER, channels=3, live=3), 1)
		row = frappe.db.get_value(
			"Email Channel Listener", self.a, ["host", "process_id", "channels", "live_channels"]
		)
		self.assertEqual(row, ("test-a", 11, 3, 3))
		leases.heartbeat(self.a, now + leases.FORGET + LATER, channels=0, live=0)
		self.assertFalse(frappe.db.exists("Email Channel Listener", self.b), "long gone: forgotten")
		leases.unregister(self.a)
		self.assertFalse(frappe.db.exists("Email Channel Listener", self.a))

	def test_a_servers_words_are_stored_as_text(self):
		listener = Listener()
		held = Held(self.names[0], frappe.db.get_value("Email Channel", self.names[0], "modified"))
		listener.write(held, live_state="Polling", listener_error='<img src=x onerror="alert(1)">')
		self.assertEqual(
			frappe.db.get_value("Email Channel", self.names[0], "listener_error"),
			'&lt;img src=x onerror="alert(1)"&gt;',
		)
