package config

import (
	"strings"
	"testing"
)

const base = `operator = "the Ministry"
notice_version = "1"
retention_days = 90
[[country]]
code = "MY"
name = "Malaysia"
timezone = "Asia/Kuala_Lumpur"
[[country]]
code = "KH"
name = "Cambodia"
timezone = "Asia/Phnom_Penh"
`

func TestValidate(t *testing.T) {
	embassy := "[[embassy]]\nid = \"my-kh\"\nname = \"Embassy\"\nnationalities = [\"MY\"]\ncountries = [\"KH\"]\n"
	for _, c := range []struct {
		name, text, wantKey string
	}{
		{"OK", base + embassy, ""},
		{"ErrNoEmbassy", base, "embassy"},
		{"ErrBadTimezone", strings.Replace(base, "Asia/Phnom_Penh", "Asia/Atlantis", 1) + embassy, "country[1].timezone"},
		{"ErrDuplicateCountry", strings.Replace(base, `"KH"`, `"MY"`, 1) + embassy, "country[1].code"},
		{"ErrLowerCaseCode", strings.Replace(base, `"KH"`, `"kh"`, 1) + embassy, "country[1].code"},
		{"ErrUnknownCountry", base + strings.Replace(embassy, `["KH"]`, `["VN"]`, 1), "embassy[0].countries"},
		{"ErrOnlyOwnCountry", base + strings.Replace(embassy, `["KH"]`, `["MY"]`, 1), "embassy[0].countries"},
		{"ErrBadID", base + strings.Replace(embassy, `"my-kh"`, `"My KH"`, 1), "embassy[0].id"},
		{"ErrLadderOrder", base + embassy + "[checkin]\nremind_after = \"3h\"\nfinal_reminder_after = \"2h\"\n", "checkin.final_reminder_after"},
		{"ErrLongPause", base + embassy + "[checkin]\nmax_pause = \"400h\"\n", "checkin.max_pause"},
		{"ErrRetention", strings.Replace(base, "retention_days = 90", "retention_days = 0", 1) + embassy, "retention_days"},
		{"ErrEmptyOperatorName", "operator_names = { ms = \" \" }\n" + base + embassy, "operator_names.ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.toml", c.text)
			if c.wantKey == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ce, ok := err.(*Error)
			if !ok || ce.File != "test.toml" || ce.Key != c.wantKey || ce.Reason == "" {
				t.Fatalf("got %#v (%v), want key %q", err, err, c.wantKey)
			}
		})
	}
}

func TestDefaultIsValidAndRoutes(t *testing.T) {
	c := Default()
	d := c.Directory()
	if got := d.EmbassyFor("MY", "KH"); got != "my-mekong" {
		t.Errorf("MY in KH routed to %q", got)
	}
	if got := d.EmbassyFor("ID", "TH"); got != "id-mekong" {
		t.Errorf("ID in TH routed to %q", got)
	}
	if p := c.Policy(); p.EscalateAfter.Hours() != 3 || p.OperatorNames["ms"] == "" {
		t.Errorf("policy %+v", p)
	}
}
