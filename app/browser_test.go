package app_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium to drive: Debian's `chromium` (scripts/test
// installs it when missing). Without one the test skips, and fails in CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium: scripts/test installs it (apt-get install chromium)")
	}
	t.Skip("no chromium (apt-get install chromium)")
	return ""
}

// TestIdentityInRealBrowser (issue 14): a Singaporean registers in Malay
// over Telegram (the fake Bot API), asks for a link, and a real headless
// Chromium opens it, goes through GovTech's mockpass (its login page: the
// citizen's NRIC and UUID typed into its form), and lands on the done page
// in Malay; the registrant is verified, the embassy's receiver gets
// registration.updated with identity (the NRIC only as a keyed hash), the
// chat is told and the link message deleted. Opening the link again in
// the browser ends on the failure page.
func TestIdentityInRealBrowser(t *testing.T) {
	exe := chromium(t)
	w := newIDWorld(t, "ms", "SG", mockpass)
	link, msg := w.askLink(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-gpu", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	const nric, uuid = "S8765432B", "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitReady("#nric"),
		chromedp.SetValue("#nric", nric), chromedp.SetValue("#uuid", uuid), chromedp.Submit("#nric"),
		chromedp.WaitReady("body > p")); err != nil {
		t.Fatalf("browser: %v", err)
	}
	done, err := chromedp.Run(ctx, chromedp.Text("body > p"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("link opened to done page in the browser: %v (Chromium's start included)", time.Since(start).Round(time.Millisecond))
	lang, err := chromedp.Run(ctx, chromedp.AttributeValue("html", "lang"))
	if err != nil {
		t.Fatal(err)
	}
	if want := w.Engine.Catalog.Text("ms", "IdentityPageDone", nil); done != want || lang.Value != "ms" {
		t.Errorf("the browser landed on %q (lang %q), want %q", done, lang.Value, want)
	}
	w.checkVerified(t, msg, "sg-mekong", map[string]any{"subject": uuid, "name": nil, "name_matches": nil, "national_id": nil})
	st, _, _ := w.Store.Registrant(w.key())
	if h := st.Identity.NationalIDHash; len(h) != 64 || strings.Contains(h, nric) {
		t.Errorf("NRIC kept as %q, want only a keyed hash", h)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitReady("body > p")); err != nil {
		t.Fatalf("browser, second visit: %v", err)
	}
	again, err := chromedp.Run(ctx, chromedp.Text("body > p"))
	if err != nil {
		t.Fatal(err)
	}
	if want := w.Engine.Catalog.Text("en", "IdentityPageError", nil); again != want {
		t.Errorf("the used link showed %q, want %q", again, want)
	}
}
