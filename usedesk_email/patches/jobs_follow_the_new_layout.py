"""Jobs queued before the Frappe layer moved into packages name functions that are gone
(`usedesk_email.poll.poll_channel`, `usedesk_email.outgoing.send_communication`): a reply
queued at the upgrade would never be sent. They are queued again under their new names,
with the same arguments and job id."""

import frappe
from frappe.utils.background_jobs import get_queues

MOVED = {
	"usedesk_email.poll.poll_channel": "usedesk_email.inbound.poll.poll_channel",
	"usedesk_email.outgoing.send_communication": "usedesk_email.outbound.delivery.send_communication",
}


def execute() -> None:
	for queue in get_queues():
		for job in queue.get_jobs():
			queued = job.kwargs or {}
			method = queued.get("method")
			if queued.get("site") != frappe.local.site or method not in MOVED:
				continue
			job.delete()
			frappe.enqueue(
				MOVED[method],
				queue=queue.name.rsplit(":", 1)[-1],
				job_id=job.id.split("::", 1)[-1],
				deduplicate=True,
				**(queued.get("kwargs") or {}),
			)
