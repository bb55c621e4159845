// Package config reads the deployment's TOML file (DESIGN §9): who runs the
// service, the check-in policy, the countries and the embassies. Secrets
// never live here; they come from environment variables.
//
// Every error names the file, the key and the reason, so an operator can fix
// a bad file without reading code.
package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/checkinbot/checkinbot"
	"github.com/checkinbot/checkinbot/dialogs"
)

// ExampleName is how the built-in default is named in error messages.
const ExampleName = "checkinbot.example.toml (built-in defaults)"

// Config is a parsed, validated configuration file.
type Config struct {
	Operator      string            `toml:"operator"`
	OperatorNames map[string]string `toml:"operator_names"`
	NoticeVersion string            `toml:"notice_version"`
	RetentionDays int               `toml:"retention_days"`
	Checkin       Checkin           `toml:"checkin"`
	Countries     []Country         `toml:"country"`
	Embassies     []Embassy         `toml:"embassy"`
}

// Checkin is the [checkin] table: the schedule and the missed check-in ladder.
type Checkin struct {
	Intervals          []Duration `toml:"intervals"`
	RemindAfter        Duration   `toml:"remind_after"`
	FinalReminderAfter Duration   `toml:"final_reminder_after"`
	EscalateAfter      Duration   `toml:"escalate_after"`
	ReescalateEvery    Duration   `toml:"reescalate_every"`
	MaxPause           Duration   `toml:"max_pause"`
}

// Country is one [[country]] entry.
type Country struct {
	Code     string `toml:"code"`
	Name     string `toml:"name"`
	Timezone string `toml:"timezone"`
}

// Embassy is one [[embassy]] entry.
type Embassy struct {
	ID            string   `toml:"id"`
	Name          string   `toml:"name"`
	Nationalities []string `toml:"nationalities"`
	Countries     []string `toml:"countries"`
}

// Duration is a Go duration written as a string: "90s", "24h".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"90s\", \"3h\" or \"24h\")", b)
	}
	d.Duration = v
	return nil
}

// Error is a configuration problem at one key of one file.
type Error struct {
	File   string
	Key    string
	Reason string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Reason)
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	return finish(path, &c, md, err)
}

// Parse validates configuration text; name is used in errors.
func Parse(name, text string) (*Config, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	return finish(name, &c, md, err)
}

// Default is the built-in configuration: checkinbot.example.toml.
func Default() *Config {
	c, err := Parse(ExampleName, checkinbot.ExampleConfig)
	if err != nil {
		panic("config: the built-in example is invalid: " + err.Error())
	}
	return c
}

func finish(name string, c *Config, md toml.MetaData, err error) (*Config, error) {
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Key: pe.LastKey, Reason: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
		}
		return nil, &Error{File: name, Reason: err.Error()}
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, &Error{File: name, Key: undecoded[0].String(), Reason: "unknown key (misspelt, or in the wrong table?)"}
	}
	if err := c.validate(); err != nil {
		if ce, ok := err.(*Error); ok {
			ce.File = name
			return nil, ce
		}
		return nil, &Error{File: name, Reason: err.Error()}
	}
	return c, nil
}

var (
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
	embassyID   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

func (c *Config) validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(c.Operator) == "" {
		return bad("operator", "missing: name who runs the service (it appears in the consent notice)")
	}
	for lang, name := range c.OperatorNames {
		if strings.TrimSpace(name) == "" {
			return bad("operator_names."+lang, "empty name")
		}
	}
	if c.NoticeVersion == "" {
		return bad("notice_version", "missing: a label for the consent notice text, such as \"2026-11\"")
	}
	if c.RetentionDays < 1 || c.RetentionDays > 3650 {
		return bad("retention_days", "must be between 1 and 3650, got %d", c.RetentionDays)
	}
	if err := c.Policy().Validate(); err != nil {
		key, reason, _ := strings.Cut(err.Error(), ": ")
		return bad("checkin."+key, "%s", reason)
	}
	if len(c.Countries) == 0 {
		return bad("country", "at least one [[country]] is needed")
	}
	seen := map[string]bool{}
	for i, k := range c.Countries {
		key := fmt.Sprintf("country[%d]", i)
		switch {
		case !countryCode.MatchString(k.Code):
			return bad(key+".code", "%q is not an ISO 3166 alpha-2 code like \"KH\"", k.Code)
		case seen[k.Code]:
			return bad(key+".code", "%q is listed twice", k.Code)
		case k.Name == "":
			return bad(key+".name", "missing: the country's English name")
		case k.Timezone == "":
			return bad(key+".timezone", "missing: an IANA time zone like \"Asia/Phnom_Penh\"")
		}
		if _, err := time.LoadLocation(k.Timezone); err != nil {
			return bad(key+".timezone", "%q is not a known IANA time zone", k.Timezone)
		}
		seen[k.Code] = true
	}
	if len(c.Embassies) == 0 {
		return bad("embassy", "at least one [[embassy]] is needed")
	}
	ids := map[string]bool{}
	for i, e := range c.Embassies {
		key := fmt.Sprintf("embassy[%d]", i)
		switch {
		case !embassyID.MatchString(e.ID):
			return bad(key+".id", "%q must be lower-case letters, digits and dashes", e.ID)
		case ids[e.ID]:
			return bad(key+".id", "%q is used by two embassies", e.ID)
		case strings.TrimSpace(e.Name) == "":
			return bad(key+".name", "missing")
		case len(e.Nationalities) == 0:
			return bad(key+".nationalities", "list at least one passport country code")
		}
		ids[e.ID] = true
		for _, n := range e.Nationalities {
			if !seen[n] {
				return bad(key+".nationalities", "%q has no [[country]] entry (needed for its name)", n)
			}
		}
		for _, k := range e.Countries {
			if !seen[k] {
				return bad(key+".countries", "%q has no [[country]] entry", k)
			}
		}
	}
	dir := c.Directory()
	for i, e := range c.Embassies {
		for _, n := range e.Nationalities {
			if len(dir.CountriesFor(n)) == 0 {
				return bad(fmt.Sprintf("embassy[%d].countries", i), "citizens of %q are covered in no country other than their own", n)
			}
		}
	}
	return nil
}

// Policy converts [checkin] and the notice settings for the engine; unset
// durations take dialogs.DefaultPolicy's values.
func (c *Config) Policy() dialogs.Policy {
	p := dialogs.DefaultPolicy()
	if len(c.Checkin.Intervals) > 0 {
		p.Intervals = nil
		for _, d := range c.Checkin.Intervals {
			p.Intervals = append(p.Intervals, d.Duration)
		}
	}
	set := func(dst *time.Duration, d Duration) {
		if d.Duration != 0 {
			*dst = d.Duration
		}
	}
	set(&p.RemindAfter, c.Checkin.RemindAfter)
	set(&p.FinalReminderAfter, c.Checkin.FinalReminderAfter)
	set(&p.EscalateAfter, c.Checkin.EscalateAfter)
	set(&p.ReescalateEvery, c.Checkin.ReescalateEvery)
	set(&p.MaxPause, c.Checkin.MaxPause)
	p.Operator, p.NoticeVersion, p.RetentionDays = c.Operator, c.NoticeVersion, c.RetentionDays
	p.OperatorNames = c.OperatorNames
	return p
}

// Directory converts countries and embassies for the engine.
func (c *Config) Directory() dialogs.Directory {
	var d dialogs.Directory
	for _, k := range c.Countries {
		loc, err := time.LoadLocation(k.Timezone)
		if err != nil {
			loc = time.UTC // unreachable after validate
		}
		d.Countries = append(d.Countries, dialogs.Country{Code: k.Code, Name: k.Name, Location: loc})
	}
	for _, e := range c.Embassies {
		d.Embassies = append(d.Embassies, dialogs.Embassy{ID: e.ID, Name: e.Name,
			Nationalities: e.Nationalities, Countries: e.Countries})
	}
	return d
}
