// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

frappe.ui.form.on("Ticket", {
	setup(frm) {
		// Agents may not read Email Channel: names come from the app, unchecked by the browser.
		frm.set_query("channel", () => ({ query: "usedesk_email.api.channel_names" }));
		frm.fields_dict.channel.df.ignore_link_validation = 1;
	},

	refresh(frm) {
		if (frm.is_new()) return;
		frm.email_field = "client_email";
		if (frm.timeline) {
			// The timeline's New Email and Reply open the ticket's reply dialog: the channel sends.
			frm.timeline.compose_mail = () => frm.trigger("reply");
		}
		frm.add_custom_button(__("Reply"), () => frm.trigger("reply")).addClass("btn-primary");
		// Agents may not read Email Channel: the server answers only what this form needs.
		frappe.xcall("usedesk_email.api.ticket_context", { ticket: frm.doc.name }).then((context) => {
			if (context.can_forward) {
				frm.add_custom_button(__("Forward message"), () => frm.trigger("forward"));
			}
			if (!context.can_send && context.reason) {
				frm.dashboard.add_comment(frappe.utils.escape_html(context.reason), "orange", true);
			}
		});
		if (frappe.model.can_read("Email Channel Message")) {
			frm.add_custom_button(__("Letters"), () =>
				frappe.set_route("List", "Email Channel Message", { ticket: frm.doc.name })
			);
		}
		if (frm.doc.delivery_problem) {
			frm.add_custom_button(__("Retry Sending"), () =>
				frappe
					.xcall("usedesk_email.api.retry_sending", { ticket: frm.doc.name })
					.then(() => frappe.show_alert({ message: __("Sending again"), indicator: "blue" }))
			);
			frm.dashboard.set_headline_alert(
				`${__("Delivery problem")}:<br>${frappe.utils
					.escape_html(frm.doc.delivery_problem)
					.replace(/\n/g, "<br>")}`,
				"red"
			);
		}
	},

	timeline_refresh(frm) {
		offer_remote_images(frm);
	},

	reply(frm) {
		const dialog = new frappe.ui.Dialog({
			title: __("Reply to {0}", [frappe.utils.escape_html(frm.doc.client_email)]),
			size: "large",
			fields: [
				{
					fieldname: "cc",
					fieldtype: "Data",
					label: __("Add CC participants"),
					description: __("Comma-separated; each participant gets their own letter."),
				},
				{ fieldname: "content", fieldtype: "Text Editor", label: __("Message") },
				{ fieldname: "attachments", fieldtype: "Attach", label: __("Attachment") },
			],
			primary_action_label: __("Send"),
			async primary_action(values) {
				const attachments = values.attachments
					? [await attachment_name(values.attachments)]
					: [];
				frappe
					.xcall("usedesk_email.api.reply", {
						ticket: frm.doc.name,
						content: values.content || "",
						attachments,
						cc: (values.cc || "").split(",").map((a) => a.trim()).filter(Boolean),
					})
					.then((r) => {
						dialog.hide();
						if (!r.error) {
							frappe.show_alert({ message: __("Reply queued"), indicator: "green" });
						}
						frm.reload_doc();
					});
			},
		});
		dialog.show();
	},

	forward(frm) {
		const dialog = new frappe.ui.Dialog({
			title: __("Forward message"),
			fields: [
				{ fieldname: "to", fieldtype: "Data", options: "Email", label: __("To"), reqd: 1 },
				{ fieldname: "note", fieldtype: "Small Text", label: __("Note") },
			],
			primary_action_label: __("Forward"),
			primary_action(values) {
				frappe
					.xcall("usedesk_email.api.forward", {
						ticket: frm.doc.name,
						to: values.to,
						note: values.note || "",
					})
					.then((r) => {
						dialog.hide();
						frappe.show_alert({
							message: __("Forwarded as ticket {0}", [r.ticket]),
							indicator: "green",
						});
						frappe.set_route("Form", "Ticket", r.ticket);
					});
			},
		});
		dialog.show();
	},
});

function offer_remote_images(frm) {
	// A mail's remote images wait in data-remote-src: loading them tells the sender when the
	// ticket was read, so each message gets its own "Show images".
	frm.timeline.timeline_wrapper.find(".timeline-message-box").each((_, box) => {
		const $box = $(box);
		const images = $box.find("img[data-remote-src]");
		if (!images.length || $box.find(".usedesk-show-images").length) return;
		$(`<button class="btn btn-xs btn-default usedesk-show-images"></button>`)
			.text(__("Show images"))
			.on("click", (event) => {
				images.each((_, img) => {
					img.src = img.dataset.remoteSrc;
					img.removeAttribute("data-remote-src");
				});
				$(event.currentTarget).remove();
			})
			.prependTo($box.find(".custom-actions").first());
	});
}

async function attachment_name(file_url) {
	// The Attach field holds the uploaded File's URL; the API takes File names.
	const r = await frappe.db.get_value("File", { file_url }, "name");
	return r.message.name;
}
