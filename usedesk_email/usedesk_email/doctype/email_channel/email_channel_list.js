frappe.listview_settings["Email Channel"] = {
	add_fields: ["enabled", "incoming_type", "consecutive_failures", "last_poll_at", "live_state"],
	get_indicator(doc) {
		if (!doc.enabled) return [__("Disabled"), "gray", "enabled,=,0"];
		if (doc.consecutive_failures) return [__("Failing"), "red", "consecutive_failures,>,0"];
		if (doc.live_state === "Live") return [__("Live"), "green", "live_state,=,Live"];
		if (doc.incoming_type === "External" && !doc.last_poll_at) return [__("Not polled yet"), "orange"];
		return [__("Working"), "green", "consecutive_failures,=,0"];
	},
};
