package dialogs

import (
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/errs"
)

// Catalog supplies localised text and the words people type. The locales
// package implements it; tests may use it as it is, because it is pure.
type Catalog interface {
	// Languages lists the supported languages, in the order offered.
	Languages() []Language
	// Text renders message id in lang with data. A missing message renders
	// in English; implementations report that to their operator.
	Text(lang, id string, data map[string]any) string
	// Count renders a plural message for n.
	Count(lang, id string, n int, data map[string]any) string
	// Lookup renders id only if lang defines it.
	Lookup(lang, id string) (string, bool)
	// Words returns the normalised command words of lang.
	Words(lang string) Words
}

// Language is one supported language: its BCP 47 tag and its own name.
type Language struct {
	Tag  string
	Name string // in the language itself: "Bahasa Melayu"
}

// Words are the plain words that reach each flow in one language, already
// passed through Normalize.
type Words struct {
	Checkin, Help, Stop, Pause, Delete, Status, Settings, MyData,
	Language, Menu, Start, Yes, No, Skip []string
	// Snooze words choose "remind me later" at the check-in question.
	Snooze []string
}

// Embassy is one mission and whom it protects.
type Embassy struct {
	ID            string
	Name          string
	Nationalities []string // passports it serves (ISO alpha-2)
	Countries     []string // where those citizens may be; empty means anywhere configured
}

// Country is a place a citizen can be, with the clock they live by.
type Country struct {
	Code     string // ISO 3166 alpha-2
	Name     string // English name, used when no locale names it
	Location *time.Location
}

// Directory is the deployment's geography: embassies and countries.
type Directory struct {
	Embassies []Embassy
	Countries []Country
}

// Policy is the check-in schedule and the consent notice parameters.
type Policy struct {
	// Intervals offered at registration; the first is the default.
	Intervals []time.Duration
	// RemindAfter, FinalReminderAfter and EscalateAfter are measured from
	// the delivery of the due prompt, each step waiting for the previous
	// one's message to be delivered; ReescalateEvery from the previous
	// escalation (schedule.go).
	RemindAfter        time.Duration
	FinalReminderAfter time.Duration
	EscalateAfter      time.Duration
	ReescalateEvery    time.Duration
	// Snooze is how long "Remind me in 30 minutes" postpones a due
	// check-in's question; SnoozeCap bounds every snooze of one due to that
	// long after the due prompt was delivered, so a snooze never postpones
	// the embassy's alert by more than SnoozeCap (DESIGN §2 flow 6: 1 h).
	Snooze    time.Duration
	SnoozeCap time.Duration
	// MaxPause bounds a pause (DESIGN §2: at most 14 days).
	MaxPause time.Duration
	// NoticeVersion identifies the consent notice text shown; it is stored
	// with the time of consent.
	NoticeVersion string
	// Operator is who runs the service, named in the consent notice;
	// OperatorNames holds its name by language tag where it is translated.
	Operator      string
	OperatorNames map[string]string
	// RetentionDays is how long data is kept after a citizen stops.
	RetentionDays int
	// NeutralWording: the messages that name the duress feature use their
	// neutral forms ("personal code"; no "secret", "alert" or "embassy"),
	// for deployments where a chat that looks like an embassy's, or a
	// visible "secret word" in the menu, would endanger the citizen.
	NeutralWording bool
	// Retention is when inactive and withdrawn registrations are removed
	// (retention.go); the zero value removes nothing.
	Retention Retention
}

// DefaultPolicy is the schedule used when the configuration sets none.
func DefaultPolicy() Policy {
	return Policy{
		Intervals:          []time.Duration{24 * time.Hour, 12 * time.Hour, 48 * time.Hour, 72 * time.Hour},
		RemindAfter:        1 * time.Hour,
		FinalReminderAfter: 2 * time.Hour,
		EscalateAfter:      3 * time.Hour,
		ReescalateEvery:    6 * time.Hour,
		Snooze:             30 * time.Minute,
		SnoozeCap:          time.Hour,
		MaxPause:           14 * 24 * time.Hour,
		NoticeVersion:      "2026-11",
		Operator:           "the Ministry of Foreign Affairs",
		RetentionDays:      90,
	}
}

// Validate reports the first inconsistency in p as an *errs.Error whose
// Key is the field's configuration key ("remind_after"), so config can name
// it without reading the message.
func (p Policy) Validate() error {
	bad := func(code errs.Code, key, format string, args ...any) error {
		return &errs.Error{Code: code, Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case len(p.Intervals) == 0:
		return bad(errs.EMISSING, "intervals", "at least one check-in interval is needed")
	case p.RemindAfter <= 0:
		return bad(errs.EINVALID, "remind_after", "must be positive")
	case p.FinalReminderAfter <= p.RemindAfter:
		return bad(errs.EINVALID, "final_reminder_after", "must be later than remind_after")
	case p.EscalateAfter <= p.FinalReminderAfter:
		return bad(errs.EINVALID, "escalate_after", "must be later than final_reminder_after")
	case p.ReescalateEvery <= 0:
		return bad(errs.EINVALID, "reescalate_every", "must be positive")
	case p.SnoozeCap <= 0 || p.SnoozeCap > time.Hour:
		return bad(errs.EINVALID, "snooze_cap", "must be between 1s and 1h (DESIGN §2: a snooze never postpones an alert by more than an hour)")
	case p.Snooze <= 0 || p.Snooze > p.SnoozeCap:
		return bad(errs.EINVALID, "snooze", "must be between 1s and %s (a snooze is capped at %s past the original due time)", shortDuration(p.SnoozeCap), shortDuration(p.SnoozeCap))
	case p.MaxPause <= 0 || p.MaxPause > 14*24*time.Hour:
		return bad(errs.EINVALID, "max_pause", "must be between 1s and 336h (14 days)")
	}
	for _, iv := range p.Intervals {
		if iv < time.Minute {
			return bad(errs.EINVALID, "intervals", "%s is shorter than a minute", iv)
		}
	}
	return nil
}

// country returns the configured country with code, if any.
func (d Directory) country(code string) (Country, bool) {
	for _, c := range d.Countries {
		if c.Code == code {
			return c, true
		}
	}
	return Country{}, false
}

// nationalities lists passports served by any embassy, in config order.
func (d Directory) nationalities() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range d.Embassies {
		for _, n := range e.Nationalities {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// CountriesFor lists where citizens of nationality are covered, in the
// order countries are configured.
func (d Directory) CountriesFor(nationality string) []string {
	covered := map[string]bool{}
	for _, e := range d.Embassies {
		if !contains(e.Nationalities, nationality) {
			continue
		}
		if len(e.Countries) == 0 {
			for _, c := range d.Countries {
				covered[c.Code] = true
			}
		}
		for _, c := range e.Countries {
			covered[c] = true
		}
	}
	var out []string
	for _, c := range d.Countries {
		if covered[c.Code] && c.Code != nationality {
			out = append(out, c.Code)
		}
	}
	return out
}

// EmbassyFor routes a citizen: the first embassy serving the nationality in
// that country, else the first serving the nationality anywhere.
func (d Directory) EmbassyFor(nationality, country string) string {
	fallback := ""
	for _, e := range d.Embassies {
		if !contains(e.Nationalities, nationality) {
			continue
		}
		if contains(e.Countries, country) {
			return e.ID
		}
		if len(e.Countries) == 0 && fallback == "" {
			fallback = e.ID
		}
	}
	return fallback
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
