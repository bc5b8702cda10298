// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

const DEFAULT_PORTS = {
	imap: { SSL: 993, STARTTLS: 143, None: 143 },
	smtp: { SSL: 465, STARTTLS: 587, None: 25 },
};

// Per channel being edited: the host fields the admin typed (a new address never overwrites
// them) and what a preset last filled in.
const host_edits = new WeakMap();
const PASSWORD_FIELDS = ["imap_password", "smtp_password", "inbound_secret"];

frappe.ui.form.on("Email Channel", {
	refresh(frm) {
		// Mailbox and SMTP passwords are the provider's, not this site's: no strength meter
		// (it would also send every keystroke of them to the server).
		for (const fieldname of PASSWORD_FIELDS) frm.get_field(fieldname).disable_password_checks();
		frm.trigger("show_health");
		frm.trigger("secret_button");
		frm.trigger("sent_folder_note");
		if (frm.is_new()) return;
		if (frm.doc.internal_address && frm.doc.incoming_type === "Internal") {
			frm.add_custom_button(__("Copy Internal Address"), () =>
				frappe.utils.copy_to_clipboard(frm.doc.internal_address)
			);
		}
		frm.add_custom_button(__("Test Connection"), () => frm.trigger("test_connection"));
		const office365 = [frm.doc.incoming_type, frm.doc.outgoing_type].includes("Office 365");
		if (office365 && frm.doc.connected_app) {
			frm.add_custom_button(__("Authorize"), () =>
				frm.call("authorize").then((r) => window.open(r.message, "_self"))
			);
		}
		if (["External", "Office 365"].includes(frm.doc.incoming_type) && frm.doc.enabled) {
			frm.add_custom_button(__("Poll Now"), () =>
				frm.call("poll_now").then(() =>
					frappe.show_alert({ message: __("Poll queued"), indicator: "blue" })
				)
			);
		}
	},

	incoming_type(frm) {
		frm.trigger("secret_button");
		if (frm.doc.incoming_type === "Office 365") frm.trigger("apply_office365");
	},

	outgoing_type(frm) {
		if (frm.doc.outgoing_type === "Office 365") frm.trigger("apply_office365");
		frm.trigger("sent_folder_note");
	},

	imap_host(frm) {
		note_typed(frm, "imap_host");
	},

	smtp_host(frm) {
		note_typed(frm, "smtp_host");
		frm.trigger("sent_folder_note");
	},

	sent_folder_note(frm) {
		// Gmail and Office 365 file what their SMTP server sent: a new channel starts off there.
		frappe
			.xcall("usedesk_email.api.saves_sent", {
				smtp_host: frm.doc.smtp_host || "",
				outgoing_type: frm.doc.outgoing_type || "",
			})
			.then((provider) => {
				const field = frm.get_field("save_to_sent");
				if (!field) return;
				field.set_new_description(
					provider
						? __(
								"{0} saves what its SMTP server sent to the Sent folder itself: leave this off, or every reply appears twice.",
								[provider]
						  )
						: ""
				);
				if (provider && frm.is_new()) frm.set_value("save_to_sent", 0);
			});
	},

	load_sent_folders(frm) {
		frm.call({ method: "sent_folders", doc: frm.doc, freeze: true, freeze_message: __("Connecting...") }).then(
			(r) => {
				const { folders, sent } = r.message;
				const dialog = new frappe.ui.Dialog({
					title: __("Sent Folder"),
					fields: [
						{
							fieldtype: "HTML",
							options: `<p>${frappe.utils.escape_html(
								sent
									? __("The server marks {0} as its Sent folder; it is used whatever you choose here.", [sent])
									: __("The server marks no folder as Sent: choose the one your mail clients use.")
							)}</p>`,
						},
						{
							fieldname: "folder",
							fieldtype: "Select",
							label: __("Folder"),
							options: folders,
							default: frm.doc.sent_folder || sent || "",
						},
					],
					primary_action_label: __("Use"),
					primary_action({ folder }) {
						frm.set_value("sent_folder", folder);
						dialog.hide();
					},
				});
				dialog.show();
			}
		);
	},

	secret_button(frm) {
		frm.remove_custom_button(__("Generate Secret"));
		if (frm.doc.incoming_type === "Internal") {
			frm.add_custom_button(__("Generate Secret"), () => frm.trigger("generate_secret"));
		}
	},

	apply_office365(frm) {
		frappe.xcall("usedesk_email.api.provider_preset", { office365: 1 }).then((preset) =>
			fill_preset(frm, preset, "Office 365")
		);
	},

	generate_secret(frm) {
		// Frappe's small-screen menu keeps removed buttons: say why instead of acting.
		if (frm.doc.incoming_type !== "Internal") {
			frappe.msgprint(__("The inbound secret is only for Internal incoming connections."));
			return;
		}
		// Made in the browser and shown once: the server never sends a stored secret back.
		const bytes = crypto.getRandomValues(new Uint8Array(32));
		const secret = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
		frm.set_value("inbound_secret", secret);
		frappe.msgprint({
			title: __("Inbound secret"),
			indicator: "orange",
			message: `<p>${__(
				"Copy it into the MTA or webhook configuration now, then save the channel. It will not be shown again."
			)}</p><pre class="usedesk-secret">${secret}</pre>`,
		});
	},

	show_health(frm) {
		if (frm.is_new() || !["External", "Office 365"].includes(frm.doc.incoming_type)) return;
		const live = frm.doc.enabled && frm.doc.live_state === "Live";
		frm.dashboard.add_indicator(
			live ? __("Real time: live (IMAP IDLE)") : __("Real time: off, polled every 5 minutes"),
			live ? "green" : "gray"
		);
		// Errors are stored as text with < and > as entities (older rows: raw): shown as text.
		const text = (value) => frappe.utils.escape_html(frappe.utils.unescape_html(value || ""));
		if (frm.doc.sent_error && !frm.doc.consecutive_failures) {
			frm.dashboard.set_headline_alert(text(frm.doc.sent_error), "orange");
		} else if (frm.doc.consecutive_failures) {
			frm.dashboard.set_headline_alert(
				`${__("Failing")} (${frm.doc.consecutive_failures}): ${text(frm.doc.last_error)}`,
				"red"
			);
		} else if (frm.doc.last_poll_at) {
			frm.dashboard.set_headline_alert(
				`${__("Last poll")} ${frappe.datetime.comment_when(frm.doc.last_poll_at)}: ${frappe.utils.escape_html(
					frm.doc.last_result || ""
				)}`,
				"green"
			);
		}
	},

	test_connection(frm) {
		frm.call({ method: "test_connection", doc: frm.doc, freeze: true, freeze_message: __("Connecting...") }).then(
			(r) => {
				const rows = (r.message.checks || []).map(
					(c) =>
						`<tr><td>${frappe.utils.escape_html(c.label)}</td>
						<td><span class="indicator-pill ${c.ok ? "green" : "red"}">${c.ok ? __("OK") : __("Failed")}</span></td>
						<td>${frappe.utils.escape_html(c.message)}</td></tr>`
				);
				frappe.msgprint({
					title: __("Connection Test"),
					indicator: r.message.ok ? "green" : "red",
					message: `<table class="table table-bordered">${rows.join("")}</table>`,
				});
			}
		);
	},

	imap_encryption(frm) {
		frm.set_value("imap_port", DEFAULT_PORTS.imap[frm.doc.imap_encryption]);
	},

	smtp_encryption(frm) {
		frm.set_value("smtp_port", DEFAULT_PORTS.smtp[frm.doc.smtp_encryption]);
	},

	imap_username(frm) {
		frm.trigger("apply_preset");
	},

	imap_email(frm) {
		frm.trigger("apply_preset");
	},

	from_email(frm) {
		frm.trigger("apply_preset");
	},

	apply_preset(frm) {
		const address = frm.doc.imap_email || frm.doc.imap_username || frm.doc.from_email;
		if (!address || !address.includes("@")) return;
		frappe
			.xcall("usedesk_email.api.provider_preset", { address })
			.then((preset) => fill_preset(frm, preset, "External"));
	},
});

function fill_preset(frm, preset, type) {
	// Empty hosts and those a provider's preset filled follow the address; typed ones stay.
	if (!preset) return;
	for (const side of ["imap", "smtp"]) {
		const host = `${side}_host`;
		const connection = side === "imap" ? frm.doc.incoming_type : frm.doc.outgoing_type;
		if (connection !== type || frm.doc[host] === preset[host]) continue;
		if (!replaceable(frm, host, preset.provider_hosts)) continue;
		hosts_of(frm).filled[host] = preset[host];
		frm.set_value({ [host]: preset[host], [`${side}_encryption`]: preset[`${side}_encryption`] }).then(
			() => frm.set_value(`${side}_port`, preset[`${side}_port`])
		);
	}
}

function replaceable(frm, host, provider_hosts) {
	const value = (frm.doc[host] || "").trim().toLowerCase();
	return !value || (!hosts_of(frm).typed.has(host) && provider_hosts.includes(value));
}

function note_typed(frm, host) {
	// A change that is not the preset's own filling is the admin's.
	if (frm.doc[host] !== hosts_of(frm).filled[host]) hosts_of(frm).typed.add(host);
}

function hosts_of(frm) {
	if (!host_edits.has(frm.doc)) host_edits.set(frm.doc, { typed: new Set(), filled: {} });
	return host_edits.get(frm.doc);
}
