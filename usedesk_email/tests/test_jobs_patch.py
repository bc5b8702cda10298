# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils.background_jobs import get_job

from usedesk_email.patches import jobs_follow_the_new_layout


class TestJobsPatch(FrappeTestCase):
	"""A job queued under a name from before the move is queued again under its new name."""

	def test_old_names_are_queued_again_under_the_new_ones(self):
		old = "usedesk_email.outgoing.send_communication"
		job_id = f"usedesk_email:send:patch-{frappe.generate_hash(length=8)}"
		frappe.enqueue(old, queue="short", job_id=job_id, communication="c-1", enqueue_after_commit=False)
		other_id = f"{job_id}:other"
		frappe.enqueue("frappe.ping", queue="short", job_id=other_id)
		try:
			jobs_follow_the_new_layout.execute()
			job = get_job(job_id)
			self.assertIsNotNone(job, "the job is queued again under its id")
			self.assertEqual(job.kwargs["method"], "usedesk_email.outbound.delivery.send_communication")
			self.assertEqual(job.kwargs["kwargs"], {"communication": "c-1"})
			self.assertEqual(get_job(other_id).kwargs["method"], "frappe.ping", "other jobs stay")
		finally:
			for name in (job_id, other_id):
				if job := get_job(name):
					job.delete()
