// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

// Mail-derived values (subject, client name and address) are hostile: the formatters that
// return HTML escape them; the subject column is text (Frappe sets it as textContent).
frappe.listview_settings["Ticket"] = {
	add_fields: ["status", "client_name", "client_email", "waiting_since", "last_client_message_at"],

	onload(listview) {
		// Agents may not read Email Channel (its fields are mailbox settings): the channel filter
		// offers channel names from the app and does not look the channel up itself.
		const channel = listview.page.fields_dict.channel;
		if (channel) {
			channel.df.ignore_link_validation = 1;
			channel.get_query = () => ({ query: "usedesk_email.api.channel_names" });
		}
		// A ticket whose client waits for an answer is bold; Frappe would make every row bold
		// (Ticket keeps no "seen by").
		listview.get_seen_class = (doc) => (doc.waiting_since ? "bold" : "");
	},

	get_indicator(doc) {
		const colour = {
			Open: doc.waiting_since ? "red" : "orange",
			Replied: "blue",
			Resolved: "green",
			Closed: "gray",
		}[doc.status];
		return [__(doc.status), colour || "gray", `status,=,${doc.status}`];
	},

	formatters: {
		// On a phone only the subject and the status show: the client comes first, so two
		// tickets with one subject can be told apart.
		subject(value, df, doc) {
			const client = doc.client_name || doc.client_email;
			return frappe.is_mobile() && client ? `${client} · ${value}` : value;
		},
		client_email(value, df, doc) {
			const escape = frappe.utils.escape_html;
			const name = doc.client_name && doc.client_name !== value ? doc.client_name : "";
			const title = name ? `${name} <${value}>` : value;
			const shown = name
				? `${escape(name)} <span class="text-muted">${escape(value)}</span>`
				: escape(value);
			return `<span class="ellipsis" title="${escape(title)}">${shown}</span>`;
		},
		last_client_message_at(value) {
			return value ? comment_when(value, true) : "";
		},
	},
};
