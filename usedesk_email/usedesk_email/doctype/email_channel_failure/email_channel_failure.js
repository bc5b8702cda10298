// Copyright (c) 2026, usedesk_email developers and contributors
// For license information, please see license.txt

frappe.ui.form.on("Email Channel Failure", {
	refresh(frm) {
		if (frm.doc.status !== "Failed") return;
		frm.add_custom_button(__("Retry"), () =>
			frm.call({ method: "retry", doc: frm.doc, freeze: true }).then((r) => {
				const { outcome, ticket } = r.message;
				frappe.show_alert({
					message:
						outcome === "failed"
							? __("Still failing; see the error below")
							: __("Stored in ticket {0}", [ticket || "-"]),
					indicator: outcome === "failed" ? "red" : "green",
				});
				frm.reload_doc();
			})
		);
	},
});
