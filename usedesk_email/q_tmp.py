import frappe


def run():
	from usedesk_email.usedesk_email.dashboard_chart_source.tickets_opened_and_answered.tickets_opened_and_answered import (
		get,
	)

	frappe.set_user("browser-agent@usedesk.test")
	d = get(
		chart_name="Tickets Opened and Answered",
		filters="{}",
		timespan="Last Month",
		time_interval="Daily",
		refresh=0,
	)
	print(d["labels"][-5:], [x["values"][-5:] for x in d["datasets"]])
	print(
		frappe.get_list(
			"Ticket",
			fields=["opened_at", "SUM(1)", "COUNT(*)"],
			filters=[["Ticket", "opened_at", ">=", "2026-10-29"]],
			group_by="opened_at",
			as_list=True,
		)[:3]
	)
