// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["Tickets Opened and Answered"] = {
	method: "usedesk_email.usedesk_email.dashboard_chart_source.tickets_opened_and_answered.tickets_opened_and_answered.get",
	filters: [],
};
