// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

// A status is said in the Ticket's own words (context "Ticket", as the form's status field
// asks too): Frappe's Russian for a bare "Open" is «Создано», a document just created, not a
// ticket waiting for an answer.
function ticket_status(status) {
	const statuses = {
		Open: [__("Open", null, "Ticket"), "red"],
		Replied: [__("Replied", null, "Ticket"), "blue"],
		Resolved: [__("Resolved", null, "Ticket"), "green"],
		Closed: [__("Closed", null, "Ticket"), "gray"],
	};
	return statuses[status] || [__(status), "gray"];
}

// Frappe's report view and read-only fields show a Select's value with a bare __(value);
// a docfield's formatter comes first.
const status_field = frappe.meta.get_docfield("Ticket", "status");
if (status_field) {
	status_field.formatter = (value) => frappe.utils.escape_html(value ? ticket_status(value)[0] : "");
}

frappe.listview_settings["Ticket"] = {
	onload(listview) {
		// Agents may not read Email Channel (its fields are mailbox settings): the channel filter
		// offers channel names from the app and does not look the channel up itself.
		const channel = listview.page.fields_dict.channel;
		if (channel) {
			channel.df.ignore_link_validation = 1;
			channel.get_query = () => ({ query: "usedesk_email.api.channel_names" });
		}
		// The list's status filter is not the Ticket's field: its options ask without context.
		const status = listview.page.fields_dict.status;
		if (status) {
			status.df.options = ["", "Open", "Replied", "Resolved", "Closed"].map((value) => ({
				value,
				label: value && ticket_status(value)[0],
			}));
			status.set_options();
		}
	},

	// Also the form's status pill.
	get_indicator(doc) {
		const [label, colour] = ticket_status(doc.status);
		return [label, colour, `status,=,${doc.status}`];
	},
};
