// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

frappe.ui.form.on("Ticket", {
	setup(frm) {
		// Agents may not read Email Channel: names come from the app, unchecked by the browser.
		frm.set_query("channel", () => ({ query: "usedesk_email.api.channel_names" }));
		frm.fields_dict.channel.df.ignore_link_validation = 1;
		frm.email_doc = (message) => open_composer(frm, message);
		add_ticket_style();
	},

	refresh(frm) {
		if (frm.is_new()) return;
		frm.email_field = "client_email";
		if (frm.timeline) {
			// The timeline's New Email and Reply open the ticket's reply dialog: the channel sends.
			frm.timeline.compose_mail = () => frm.trigger("reply");
		}
		frm.add_custom_button(__("Reply"), () => frm.trigger("reply")).addClass("btn-primary usedesk-reply");
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
		let sending = false;
		const dialog = new frappe.ui.Dialog({
			title: __("Reply to {0}", [frappe.utils.escape_html(frm.doc.client_email)]),
			size: "large",
			no_submit_on_enter: true, // Enter in a field never sends: Ctrl+Enter does
			fields: [
				// first, so the dialog opens with the cursor in the message
				{
					fieldname: "content",
					fieldtype: "Text Editor",
					label: __("Message"),
					description: __("Ctrl+Enter sends the reply."),
				},
				{ fieldname: "closing", fieldtype: "HTML" },
				{
					fieldname: "cc",
					fieldtype: "Data",
					label: __("Add CC participants"),
					description: __("Comma-separated; each participant gets their own letter."),
				},
				{ fieldname: "attachments", fieldtype: "Attach", label: __("Attachment") },
			],
			primary_action_label: __("Send"),
			async primary_action(values) {
				if (sending) return;
				sending = true;
				try {
					const attachments = values.attachments
						? [await attachment_name(values.attachments)]
						: [];
					const r = await frappe.xcall("usedesk_email.api.reply", {
						ticket: frm.doc.name,
						// the editor passes its text on after a pause: read it now
						content: dialog.fields_dict.content.get_input_value() || "",
						attachments,
						cc: (values.cc || "").split(",").map((a) => a.trim()).filter(Boolean),
					});
					dialog.hide();
					if (!r.error) {
						frappe.show_alert({ message: __("Reply queued"), indicator: "green" });
					}
					frm.reload_doc();
				} finally {
					sending = false;
				}
			},
		});
		dialog.$wrapper[0].addEventListener(
			"keydown",
			(event) => {
				// before the editor turns the Enter into a new line
				if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
				event.preventDefault();
				event.stopPropagation();
				dialog.get_primary_btn().trigger("click");
			},
			true
		);
		frappe
			.call({ method: "usedesk_email.api.reply_preview", type: "GET", args: { ticket: frm.doc.name } })
			.then((r) => show_closing(dialog.fields_dict.closing.$wrapper, r.message));
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

function show_closing(wrapper, preview) {
	// The server's HTML: sanitised there (the quote is mail), images wait as in the timeline.
	const part = (label, html) =>
		`<details class="usedesk-closing"><summary>${label}</summary><div class="usedesk-closing-body">${html}</div></details>`;
	const parts = [];
	if (preview.signature) parts.push(part(__("Signature"), preview.signature));
	if (preview.quote) {
		parts.push(part(__("Quoted conversation"), preview.quote));
	} else if (!preview.quoting) {
		parts.push(`<p class="text-muted small">${__("This channel sends no quote of earlier messages.")}</p>`);
	}
	if (!parts.length) return;
	wrapper.html(
		`<div class="usedesk-closing-title text-muted small">${__("Added below your message")}</div>${parts.join("")}`
	);
}

function open_composer(frm, message) {
	// Frappe's composer (Ctrl+E, the menu's Email) sends through the channel (usedesk_email.api.make),
	// which carries no print of the ticket: the subject is the ticket's, the print options go.
	const composer = new frappe.views.CommunicationComposer({
		doc: frm.doc,
		frm,
		subject: frm.doc.subject,
		recipients: frm.doc.client_email,
		attach_document_print: false,
		message,
	});
	for (const fieldname of ["attach_document_print", "select_print_format", "print_language"]) {
		composer.dialog.set_df_property(fieldname, "hidden", 1);
	}
	return composer;
}

function add_ticket_style() {
	// Phones: the conversation and Reply first; message headers that keep their words together.
	if (document.getElementById("usedesk-ticket-style")) return;
	const page = '[data-page-route="Ticket"]';
	$("<style id='usedesk-ticket-style'>")
		.text(
			`
			.usedesk-closing { margin-bottom: var(--margin-sm); }
			.usedesk-closing > summary { cursor: pointer; color: var(--text-muted); }
			.usedesk-closing-body { max-height: 240px; overflow: auto; padding: var(--padding-sm); }
			@media (max-width: 767px), (min-width: 992px) and (max-width: 1199px) {
				${page} .page-actions .custom-actions:not(.hide) { display: flex !important; }
				${page} .page-actions .custom-actions > :not(.usedesk-reply) { display: none; }
			}
			@media (max-width: 767px) {
				${page} .page-head-content { flex-wrap: nowrap; }
				${page} .page-head .page-title { flex: 1 1 auto; max-width: none; min-width: 0; }
				${page} .page-head .page-actions { flex: 0 0 auto; width: auto; }
				${page} .layout-main-section-wrapper { display: flex; flex-direction: column; }
				${page} .layout-main-section, ${page} .layout-main-section > div,
				${page} .std-form-layout, ${page} .form-layout { display: contents; }
				${page} .layout-main-section-wrapper > :has(> .form-footer) { order: 1; }
				${page} .form-page { order: 2; margin-top: var(--margin-lg); }
				${page} .form-footer .after-save { display: flex; flex-direction: column; }
				${page} .form-footer .new-timeline { order: -1; }
				${page} .timeline-message-box > .flex.justify-between { flex-wrap: wrap; row-gap: var(--padding-xs); }
				${page} .timeline-message-box > .flex.justify-between > :first-child { flex: 1 1 12rem; min-width: 0; }
			}
			`
		)
		.appendTo(document.head);
}
