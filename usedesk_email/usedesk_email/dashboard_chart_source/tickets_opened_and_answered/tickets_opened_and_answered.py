# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The Helpdesk workspace's chart: tickets opened, and tickets answered (their first reply
out), per day or whatever interval the chart is set to; both from indexed Ticket times."""

from datetime import datetime, time

import frappe
from frappe.desk.doctype.dashboard_chart.dashboard_chart import get_chart_config
from frappe.utils import getdate


@frappe.whitelist()
def get(
	chart_name: str | None = None,
	chart=None,
	no_cache=None,
	filters=None,
	from_date=None,
	to_date=None,
	timespan: str | None = None,
	time_interval: str | None = None,
	heatmap_year=None,
	refresh=None,
) -> dict:
	"""Frappe's own Count chart of Ticket, once per time field, as two lines of one chart;
	counted with the user's permissions, as Frappe's charts are. Counted afresh each time:
	Frappe's chart cache keeps a chart until someone refreshes it by hand, and the counts are
	two grouped queries on indexed columns."""
	chart = (
		frappe.get_doc("Dashboard Chart", chart_name)
		if chart_name
		else frappe._dict(frappe.parse_json(chart))
	)
	timespan, time_interval = timespan or chart.timespan, time_interval or chart.time_interval
	if timespan == "Select Date Range":  # whole days, the last one too
		from_date = getdate(from_date or chart.from_date)
		to_date = datetime.combine(getdate(to_date or chart.to_date), time.max)
	else:
		from_date = to_date = None  # Frappe counts back from now
	configs = [
		get_chart_config(
			frappe._dict(document_type="Ticket", based_on=field, chart_type="Count", name=label),
			[],
			timespan,
			time_interval,
			from_date,
			to_date,
		)
		for label, field in ((frappe._("Opened"), "opened_at"), (frappe._("Answered"), "first_response_at"))
	]
	return {"labels": configs[0]["labels"], "datasets": [c["datasets"][0] for c in configs]}
