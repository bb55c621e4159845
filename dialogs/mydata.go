// My data (DESIGN §2 flow 8): everything stored about the citizen, as
// the phone is allowed to see it (a covert stop, pause or delete shows what
// was asked for). It asks no question, so it declares no steps.

package dialogs

// myData shows the citizen what is stored about them.
func (t *turn) myData() {
	d := t.summaryData()
	statusText := map[Status]string{StatusActive: "StatusActive", StatusPaused: "StatusPaused",
		StatusStopped: "StatusStopped", StatusDeleted: "StatusActive"}[t.visible()]
	d["Status"] = t.text(statusText, map[string]any{"Until": t.when(t.st.PausedUntil)})
	d["Phone"] = t.st.Profile.Phone
	if d["Phone"] == "" {
		d["Phone"] = t.text("ValueNone", nil)
	}
	d["Consent"] = t.when(t.st.ConsentAt)
	d["Version"] = t.st.NoticeVersion
	d["Last"] = t.when(t.st.LastCheckin)
	d["Next"] = t.when(t.shownNextDue())
	t.audit("mydata.shown")
	t.reply("MyData", d)
	if line := t.identityLine(); line != "" {
		last := &t.res.Replies[len(t.res.Replies)-1]
		last.Text += "\n" + line
	}
}
