// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

frappe.listview_settings["Ticket"] = {
	onload(listview) {
		// Agents may not read Email Channel (its fields are mailbox settings): the channel filter
		// offers channel names from the app and does not look the channel up itself.
		const channel = listview.page.fields_dict.channel;
		if (channel) {
			channel.df.ignore_link_validation = 1;
			channel.get_query = () => ({ query: "usedesk_email.api.channel_names" });
		}
	},

	// Also the form's status pill. A status is said in the Ticket's own words (context
	// "Ticket", as the form's status field asks too): Frappe's Russian for a bare "Open" is
	// «Создано», a document created, not a ticket waiting for an answer.
	get_indicator(doc) {
		const statuses = {
			Open: [__("Open", null, "Ticket"), "red"],
			Replied: [__("Replied", null, "Ticket"), "blue"],
			Resolved: [__("Resolved", null, "Ticket"), "green"],
			Closed: [__("Closed", null, "Ticket"), "gray"],
		};
		const [label, colour] = statuses[doc.status] || [__(doc.status), "gray"];
		return [label, colour, `status,=,${doc.status}`];
	},
};
