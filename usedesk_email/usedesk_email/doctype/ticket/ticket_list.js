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
};
