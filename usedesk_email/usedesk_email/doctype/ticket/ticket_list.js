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
		// The list's status filter is not the Ticket's field: its options ask without context.
		const status = listview.page.fields_dict.status;
		if (status) {
			status.df.options = ["", "Open", "Replied", "Resolved", "Closed"].map((value) => ({
				value,
				label: value && ticket_status(value)[0],
			}));
			status.set_options();
		}
		// A ticket whose client waits for an answer is bold; Frappe would make every row bold
		// (Ticket keeps no "seen by").
		listview.get_seen_class = (doc) => (doc.waiting_since ? "bold" : "");
	},

	// Also the form's status pill. An open ticket whose client waits is red; one that waits
	// for no one (its reply failed, or it was reopened by hand) orange.
	get_indicator(doc) {
		const [label, colour] = ticket_status(doc.status);
		const waits_for_no_one = doc.status === "Open" && !doc.waiting_since;
		return [label, waits_for_no_one ? "orange" : colour, `status,=,${doc.status}`];
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
