"""Which real-time listener holds which channel, across processes and machines: lease rows.

A listener holds a channel while the channel's row names it (`listener`) and the lease
(`lease_until`) has not run out. Taking a channel is one conditional UPDATE that only
touches rows nobody holds or whose lease ran out, so two listeners never hold the same
channel; every time here is the database server's (`db.database_now`), so the machines'
clocks need not agree. A listener renews its leases every few seconds; one that dies
(kill -9, a lost machine) stops renewing, and the others take its channels once the leases
run out. Each listener also keeps a row in Email Channel Listener with a lease of its own,
so all know how many share the channels and each takes its share: starting a listener on a
second machine spreads them.
"""

from datetime import datetime, timedelta

import frappe
from frappe.utils import now_datetime

from usedesk_email.channel.kinds import OWN_SERVER

LEASE = timedelta(seconds=30)
FORGET = timedelta(hours=1)  # a listener's row is deleted this long after its lease ran out
CHANNEL = "Email Channel"
LISTENER = "Email Channel Listener"
LIVE, POLLING = "Live", "Polling"  # the channel's live_state


def polled_channels() -> list[frappe._dict]:
	"""Enabled channels that read a mailbox, with what a listener decides by."""
	return frappe.get_all(
		CHANNEL,
		filters={"enabled": 1, "incoming_type": ("in", OWN_SERVER)},
		fields=[
			"name",
			"modified",
			"listener",
			"lease_until",
			"consecutive_failures",
			"next_poll_after",
		],
		order_by="name",
	)


def is_free(row: frappe._dict, now: datetime) -> bool:
	return not row.listener or not row.lease_until or row.lease_until <= now


def claim(holder: str, names: list[str], now: datetime) -> list[str]:
	"""Take those of `names` that nobody holds; returns the ones this listener holds now."""
	if not names:
		return []
	channel = frappe.qb.DocType(CHANNEL)
	free = (
		channel.listener.isnull()
		| (channel.listener == "")
		| channel.lease_until.isnull()
		| (channel.lease_until <= now)
	)
	(
		frappe.qb.update(channel)
		.set(channel.listener, holder)
		.set(channel.lease_until, now + LEASE)
		.where(channel.name.isin(names) & free)
		.run()
	)
	frappe.db.commit()
	return frappe.get_all(CHANNEL, filters={"name": ("in", names), "listener": holder}, pluck="name")


def renew(holder: str, now: datetime) -> list[str]:
	"""Extend every lease the listener still has; returns the channels it holds."""
	channel = frappe.qb.DocType(CHANNEL)
	frappe.qb.update(channel).set(channel.lease_until, now + LEASE).where(channel.listener == holder).run()
	frappe.db.commit()
	return frappe.get_all(CHANNEL, filters={"listener": holder}, pluck="name")


def release(holder: str, names: list[str] | None = None) -> None:
	"""Give channels back (all of the listener's when `names` is None): they show Polling
	until another listener takes them."""
	channel = frappe.qb.DocType(CHANNEL)
	mine = channel.listener == holder
	if names is not None:
		if not names:
			return
		mine &= channel.name.isin(names)
	(
		frappe.qb.update(channel)
		.set(channel.listener, None)
		.set(channel.lease_until, None)
		.set(channel.live_state, POLLING)
		.where(mine)
		.run()
	)
	frappe.db.commit()


def mark_unheld(now: datetime) -> None:
	"""A channel whose listener stopped renewing (it died) shows Polling, not Live."""
	channel = frappe.qb.DocType(CHANNEL)
	(
		frappe.qb.update(channel)
		.set(channel.live_state, POLLING)
		.where((channel.live_state == LIVE) & (channel.lease_until.isnull() | (channel.lease_until <= now)))
		.run()
	)
	frappe.db.commit()


def heartbeat(holder: str, now: datetime, channels: int, live: int) -> int:
	"""Renew the listener's own row; returns how many listeners are alive, this one included."""
	values = {
		"heartbeat_at": now_datetime(),  # the site's clock, as the desk shows times
		"lease_until": now + LEASE,
		"channels": channels,
		"live_channels": live,
	}
	if frappe.db.exists(LISTENER, holder):
		frappe.db.set_value(LISTENER, holder, values, update_modified=False)
	else:
		host, pid, _nonce = holder.rsplit(":", 2)
		frappe.get_doc(
			{
				"doctype": LISTENER,
				"host": host,
				"process_id": int(pid),
				"started_at": now_datetime(),
				**values,
			}
		).insert(ignore_permissions=True, set_name=holder)
	frappe.db.delete(LISTENER, {"lease_until": ("<", now - FORGET)})
	frappe.db.commit()
	return frappe.db.count(LISTENER, {"lease_until": (">", now)})


def unregister(holder: str) -> None:
	"""A listener that stops gives its channels back and leaves the list."""
	release(holder)
	frappe.db.delete(LISTENER, {"name": holder})
	frappe.db.commit()
