// Package config reads the deployment's TOML file (DESIGN §9): who runs the
// service, the check-in policy, the countries and the embassies. Secrets
// never live here; they come from environment variables.
//
// Every error is an *Error (an *errs.Error): it names the file, the key and
// the reason, so an operator can fix a bad file without reading code, and
// carries a stable code, so a program decides with errors.As or
// errs.ErrorCode and never by reading the message.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/checkinbot/checkinbot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/identity"
	"github.com/checkinbot/checkinbot/webhook"
)

// ExampleName is how the built-in default is named in error messages.
const ExampleName = "checkinbot.example.toml (built-in defaults)"

// Config is a parsed, validated configuration file.
type Config struct {
	Operator      string            `toml:"operator"`
	OperatorNames map[string]string `toml:"operator_names"`
	NoticeVersion string            `toml:"notice_version"`
	RetentionDays int               `toml:"retention_days"`
	// NeutralWording selects the wording that never names the duress
	// feature (dialogs.Policy.NeutralWording).
	NeutralWording bool      `toml:"neutral_wording"`
	Checkin        Checkin   `toml:"checkin"`
	Delivery       Delivery  `toml:"delivery"`
	Audit          Audit     `toml:"audit"`
	Retention      Retention `toml:"retention"`
	Telegram       Telegram  `toml:"telegram"`
	WhatsApp       WhatsApp  `toml:"whatsapp"`
	Limits         Limits    `toml:"limits"`
	Countries      []Country `toml:"country"`
	Embassies      []Embassy `toml:"embassy"`
	// MasterKeyFile names a file holding the master key that encrypts the
	// data file, when CHECKIN_MASTER_KEY does not (LoadKeyring).
	MasterKeyFile string `toml:"master_key_file"`
	// OldMasterKeyFile names the previous master key during a rotation
	// (`checkinbot keys rotate`), when CHECKIN_MASTER_KEY_OLD does not.
	OldMasterKeyFile string `toml:"old_master_key_file"`
	// Identity is the [identity] table: verified identity through
	// national digital IDs (DESIGN §12); config/identity.go checks it.
	Identity identity.Settings `toml:"identity"`

	// Name is the file the configuration came from, for error messages.
	Name string `toml:"-"`
}

// Delivery is the [delivery] table: how webhooks are delivered.
type Delivery struct {
	Timeout        Duration `toml:"timeout"`
	SecondaryAfter Duration `toml:"secondary_after"`
	GiveUpAfter    Duration `toml:"give_up_after"`
	KeepDelivered  Duration `toml:"keep_delivered"`
	HeartbeatEvery Duration `toml:"heartbeat_every"`
}

// Audit is the [audit] table: how long the audit trail keeps entries.
type Audit struct {
	// Retention: entries older than this are compacted into one
	// checkpoint that keeps the chain verifiable (unset: DefaultAuditRetention).
	Retention Duration `toml:"retention"`
}

// DefaultAuditRetention is audit.retention when unset: 400 days, a year
// of audit with a margin.
const DefaultAuditRetention = 400 * 24 * time.Hour

// AuditRetention is audit.retention, or its default.
func (c *Config) AuditRetention() time.Duration {
	if c.Audit.Retention.Duration > 0 {
		return c.Audit.Retention.Duration
	}
	return DefaultAuditRetention
}

// Retention is the [retention] table: when unused registrations and
// delivered events are removed (dialogs.Retention, docs/operations.md).
// Unset keys take the defaults in retentionDefaults.
type Retention struct {
	// Withdrawn: a stopped registration is removed this long after the
	// citizen last wrote; default retention_days, which the consent notice
	// states, and never longer.
	Withdrawn Duration `toml:"withdrawn"`
	// Inactive: any other registration is removed this long after its last
	// message or check-in (default 180 days).
	Inactive Duration `toml:"inactive"`
	// Notice: the citizen is told this long before a removal (default 14
	// days).
	Notice Duration `toml:"notice"`
	// Delivered: how long delivered events stay for audit (default 30
	// days); delivery.keep_delivered is its older name.
	Delivered Duration `toml:"delivered"`
}

// Retention defaults (issue 13 item 5).
const (
	DefaultRetentionInactive = 180 * 24 * time.Hour
	DefaultRetentionNotice   = 14 * 24 * time.Hour
)

// Telegram is the [telegram] table. The bot token itself comes from the
// environment (CHECKIN_TELEGRAM_TOKEN).
type Telegram struct {
	// APIURL overrides Telegram's Bot API address (tests, local servers);
	// CHECKIN_TELEGRAM_API_URL overrides it in turn.
	APIURL string `toml:"api_url"`
	// Mode is "polling" (default) or "webhook".
	Mode string `toml:"mode"`
	// WebhookURL is the public HTTPS address Telegram posts updates to;
	// WebhookSecretEnv names the variable holding the secret Telegram must
	// present; Listen is the local address serving it.
	WebhookURL       string `toml:"webhook_url"`
	WebhookSecretEnv string `toml:"webhook_secret_env"`
	Listen           string `toml:"listen"`
	// GlobalRate caps messages per second overall; PerChatInterval is the
	// least time between two messages to one chat.
	GlobalRate      float64  `toml:"global_rate"`
	PerChatInterval Duration `toml:"per_chat_interval"`
	// AllowPaidBroadcast sends scheduled prompts and reminders with
	// Telegram's allow_paid_broadcast, at PaidBroadcastRate messages a
	// second (default and at most 1000), paid in Telegram Stars from the
	// bot's balance (docs/telegram.md): for deployments whose prompts
	// would otherwise leave hours late.
	AllowPaidBroadcast bool    `toml:"allow_paid_broadcast"`
	PaidBroadcastRate  float64 `toml:"paid_broadcast_rate"`
}

// WhatsApp is the [whatsapp] table: how fast the channel may send. The
// defaults (2 s per recipient, 1 s overall) are chosen against ban risk;
// see docs/whatsapp.md before changing them.
type WhatsApp struct {
	PerRecipientInterval Duration `toml:"per_recipient_interval"`
	GlobalInterval       Duration `toml:"global_interval"`
}

// Limits is the [limits] table: flood and abuse control (the runner's
// bot.FloodLimit and bot.RegistrationLimit). Zero means the default.
type Limits struct {
	// FloodMessages within FloodWindow from one citizen start a flood: one
	// hint, then no replies (every message still read) until a whole
	// window passes with nothing.
	FloodMessages int      `toml:"flood_messages"`
	FloodWindow   Duration `toml:"flood_window"`
	// RegistrationsPerChat is how many new records one chat may start in
	// a day; RegistrationsPerMinute how many all unknown chats may start
	// in a minute.
	RegistrationsPerChat   int `toml:"registrations_per_chat"`
	RegistrationsPerMinute int `toml:"registrations_per_minute"`
}

func (l Limits) validate() error {
	switch {
	case l.FloodMessages != 0 && (l.FloodMessages < 5 || l.FloodMessages > 10000):
		return configError(errs.EINVALID, "limits.flood_messages", "must be between 5 and 10000 messages (default 20), got %d", l.FloodMessages)
	case l.FloodWindow.Duration != 0 && (l.FloodWindow.Duration < time.Second || l.FloodWindow.Duration > 10*time.Minute):
		return configError(errs.EINVALID, "limits.flood_window", "must be between 1s and 10m (default 10s), got %s", l.FloodWindow.Duration)
	case l.RegistrationsPerChat != 0 && (l.RegistrationsPerChat < 1 || l.RegistrationsPerChat > 1000):
		return configError(errs.EINVALID, "limits.registrations_per_chat", "must be between 1 and 1000 a day (default 5), got %d", l.RegistrationsPerChat)
	case l.RegistrationsPerMinute != 0 && (l.RegistrationsPerMinute < 1 || l.RegistrationsPerMinute > 1000000):
		return configError(errs.EINVALID, "limits.registrations_per_minute", "must be between 1 and 1000000 a minute (default 120), got %d", l.RegistrationsPerMinute)
	}
	return nil
}

// Partner is an [[embassy.partner]]: an NGO endpoint receiving chosen types.
type Partner struct {
	ID        string   `toml:"id"`
	URL       string   `toml:"url"`
	SecretEnv []string `toml:"secret_env"`
	Events    []string `toml:"events"`
}

// Checkin is the [checkin] table: the schedule and the missed check-in ladder.
type Checkin struct {
	Intervals          []Duration `toml:"intervals"`
	RemindAfter        Duration   `toml:"remind_after"`
	FinalReminderAfter Duration   `toml:"final_reminder_after"`
	EscalateAfter      Duration   `toml:"escalate_after"`
	ReescalateEvery    Duration   `toml:"reescalate_every"`
	MaxPause           Duration   `toml:"max_pause"`
	// Snooze is how long "Remind me in 30 minutes" postpones a due
	// check-in (at most 1h: every snooze ends by an hour after the due
	// prompt was delivered, DESIGN §2 flow 6).
	Snooze Duration `toml:"snooze"`
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
	// WebhookURL receives every event of this embassy; SecondaryURL also
	// receives critical events once the primary has failed for
	// delivery.secondary_after. Both are signed with the secrets in the
	// environment variables named by SecretEnv (several during rotation).
	WebhookURL   string    `toml:"webhook_url"`
	SecondaryURL string    `toml:"secondary_url"`
	SecretEnv    []string  `toml:"secret_env"`
	Partners     []Partner `toml:"partner"`
	// PullOnly says that this embassy has no webhook URL on purpose: it
	// will fetch its events from the event API (DESIGN §5). Without it,
	// `serve` refuses an embassy with no webhook URL, because its
	// escalations would wait in the outbox with nobody to receive them.
	PullOnly bool `toml:"pull_only"`
	// APITokenEnv names the environment variables holding this embassy's
	// bearer tokens for the embassy API (DESIGN §5); several during a
	// rotation. Each token's label in the audit trail is its variable's
	// name, so the trail says which credential acted, never the secret.
	APITokenEnv []string `toml:"api_token_env"`
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

// Error is a configuration problem at one key of one file: errs.Error,
// so its Code means the same here as in the store and the API. Every error
// config returns is one, with File and Code always set and Key set unless
// the problem is the file as a whole. Its message is "file: key: reason".
type Error = errs.Error

// configError returns an *Error at key in the file being checked (finish
// fills in File).
func configError(code errs.Code, key, format string, args ...any) *Error {
	return &Error{Code: code, Key: key, Reason: fmt.Sprintf(format, args...)}
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
		switch {
		case errors.As(err, &pe):
			return nil, &Error{Code: errs.EINVALID, File: name, Key: pe.LastKey, Err: err,
				Reason: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
		case errors.Is(err, fs.ErrNotExist):
			return nil, &Error{Code: errs.ENOTFOUND, File: name, Reason: err.Error(), Err: err}
		}
		// A type mismatch: the TOML library names the key only in its
		// text, which stays the reason as it is.
		return nil, &Error{Code: errs.EINVALID, File: name, Reason: err.Error(), Err: err}
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return nil, &Error{Code: errs.EUNKNOWNKEY, File: name, Key: undecoded[0].String(),
			Reason: "unknown key (misspelt, or in the wrong table?)"}
	}
	if key, want, ok := misCased(md); !ok {
		return nil, &Error{Code: errs.EUNKNOWNKEY, File: name, Key: key,
			Reason: fmt.Sprintf("unknown key: keys are case-sensitive (did you mean %q?)", want)}
	}
	c.Name = name
	if err := c.validate(); err != nil {
		var ce *Error
		if !errors.As(err, &ce) { // unreachable: validate returns only *Error
			ce = &Error{Code: errs.EINTERNAL, Reason: err.Error(), Err: err}
		}
		ce.File = name
		return nil, ce
	}
	return c, nil
}

// misCased finds a key the TOML library matched to a field only by
// ignoring case. TOML keys are case-sensitive, so "Embassy" and "embassy"
// are two keys that the library would decode into the same field, the
// later one in map order winning: the same file would load differently
// from run to run (found by FuzzLoad). It returns the first such key, as
// written and as it should be, and ok false.
func misCased(md toml.MetaData) (key, want string, ok bool) {
	for _, k := range md.Keys() {
		t := reflect.TypeFor[Config]()
		for i, part := range k {
			for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() == reflect.Map {
				t = t.Elem() // a map's keys are the user's (operator_names.<lang>)
				continue
			}
			if t.Kind() != reflect.Struct {
				break
			}
			f, found := fieldByTag(t, part)
			if !found {
				fixed := append(slices.Clone(k[:i]), strings.ToLower(part))
				return k.String(), strings.Join(fixed, "."), false
			}
			t = f.Type
		}
	}
	return "", "", true
}

// fieldByTag is the field of struct type t whose toml tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("toml"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
	embassyID   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

func (c *Config) validate() error {
	bad := func(code errs.Code, key, format string, args ...any) error {
		return configError(code, key, format, args...)
	}
	if strings.TrimSpace(c.Operator) == "" {
		return bad(errs.EMISSING, "operator", "missing: name who runs the service (it appears in the consent notice)")
	}
	for lang, name := range c.OperatorNames {
		if strings.TrimSpace(name) == "" {
			return bad(errs.EMISSING, "operator_names."+lang, "empty name")
		}
	}
	if c.NoticeVersion == "" {
		return bad(errs.EMISSING, "notice_version", "missing: a label for the consent notice text, such as \"2026-11\"")
	}
	if c.RetentionDays < 1 || c.RetentionDays > 3650 {
		return bad(errs.EINVALID, "retention_days", "must be between 1 and 3650, got %d", c.RetentionDays)
	}
	if err := c.Policy().Validate(); err != nil {
		// The policy's fields are named by their [checkin] keys.
		var pe *errs.Error
		if !errors.As(err, &pe) {
			return &Error{Code: errs.EINVALID, Key: "checkin", Reason: err.Error(), Err: err}
		}
		return &Error{Code: errs.ErrorCode(err), Key: "checkin." + pe.Key, Reason: pe.Reason, Err: err}
	}
	if len(c.Countries) == 0 {
		return bad(errs.EMISSING, "country", "at least one [[country]] is needed")
	}
	seen := map[string]bool{}
	for i, k := range c.Countries {
		key := fmt.Sprintf("country[%d]", i)
		switch {
		case !countryCode.MatchString(k.Code):
			return bad(errs.EINVALID, key+".code", "%q is not an ISO 3166 alpha-2 code like \"KH\"", k.Code)
		case seen[k.Code]:
			return bad(errs.ECONFLICT, key+".code", "%q is listed twice", k.Code)
		case k.Name == "":
			return bad(errs.EMISSING, key+".name", "missing: the country's English name")
		case k.Timezone == "":
			return bad(errs.EMISSING, key+".timezone", "missing: an IANA time zone like \"Asia/Phnom_Penh\"")
		}
		if _, err := time.LoadLocation(k.Timezone); err != nil {
			return bad(errs.EINVALID, key+".timezone", "%q is not a known IANA time zone", k.Timezone)
		}
		seen[k.Code] = true
	}
	if len(c.Embassies) == 0 {
		return bad(errs.EMISSING, "embassy", "at least one [[embassy]] is needed")
	}
	ids := map[string]bool{}
	for i, e := range c.Embassies {
		key := fmt.Sprintf("embassy[%d]", i)
		switch {
		case !embassyID.MatchString(e.ID):
			return bad(errs.EINVALID, key+".id", "%q must be lower-case letters, digits and dashes", e.ID)
		case ids[e.ID]:
			return bad(errs.ECONFLICT, key+".id", "%q is used by two embassies", e.ID)
		case strings.TrimSpace(e.Name) == "":
			return bad(errs.EMISSING, key+".name", "missing")
		case len(e.Nationalities) == 0:
			return bad(errs.EMISSING, key+".nationalities", "list at least one passport country code")
		}
		ids[e.ID] = true
		for _, n := range e.Nationalities {
			if !seen[n] {
				return bad(errs.ENOTFOUND, key+".nationalities", "%q has no [[country]] entry (needed for its name)", n)
			}
		}
		for _, k := range e.Countries {
			if !seen[k] {
				return bad(errs.ENOTFOUND, key+".countries", "%q has no [[country]] entry", k)
			}
		}
	}
	for i, e := range c.Embassies {
		if err := validateAPITokenEnv(fmt.Sprintf("embassy[%d].api_token_env", i), e.APITokenEnv); err != nil {
			return err
		}
		if err := validateEndpoints(fmt.Sprintf("embassy[%d]", i), e); err != nil {
			return err
		}
	}
	if err := c.Telegram.validate(); err != nil {
		return err
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if d := c.WhatsApp.PerRecipientInterval.Duration; d != 0 && d < 500*time.Millisecond {
		return bad(errs.EINVALID, "whatsapp.per_recipient_interval", "%s is too fast for WhatsApp (at least 500ms; default 2s)", d)
	}
	if d := c.WhatsApp.GlobalInterval.Duration; d != 0 && d < 200*time.Millisecond {
		return bad(errs.EINVALID, "whatsapp.global_interval", "%s is too fast for WhatsApp (at least 200ms; default 1s)", d)
	}
	// In file order, so that of several bad keys the same one is named
	// every time.
	for _, d := range []struct {
		key string
		d   Duration
	}{{"delivery.timeout", c.Delivery.Timeout}, {"delivery.secondary_after", c.Delivery.SecondaryAfter},
		{"delivery.give_up_after", c.Delivery.GiveUpAfter}, {"delivery.keep_delivered", c.Delivery.KeepDelivered},
		{"delivery.heartbeat_every", c.Delivery.HeartbeatEvery}, {"audit.retention", c.Audit.Retention}} {
		if d.d.Duration < 0 {
			return bad(errs.EINVALID, d.key, "must not be negative")
		}
	}
	if err := c.validateRetention(); err != nil {
		return err
	}
	dir := c.Directory()
	for i, e := range c.Embassies {
		for _, n := range e.Nationalities {
			if len(dir.CountriesFor(n)) == 0 {
				return bad(errs.EINVALID, fmt.Sprintf("embassy[%d].countries", i), "citizens of %q are covered in no country other than their own", n)
			}
		}
	}
	return c.validateIdentity()
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
	override(&p.RemindAfter, c.Checkin.RemindAfter)
	override(&p.FinalReminderAfter, c.Checkin.FinalReminderAfter)
	override(&p.EscalateAfter, c.Checkin.EscalateAfter)
	override(&p.ReescalateEvery, c.Checkin.ReescalateEvery)
	override(&p.MaxPause, c.Checkin.MaxPause)
	override(&p.Snooze, c.Checkin.Snooze)
	p.Operator, p.NoticeVersion, p.RetentionDays = c.Operator, c.NoticeVersion, c.RetentionDays
	p.NeutralWording = c.NeutralWording
	p.OperatorNames = c.OperatorNames
	p.Retention = c.RetentionPolicy()
	return p
}

// RetentionPolicy is [retention] for the engine, defaults filled in.
func (c *Config) RetentionPolicy() dialogs.Retention {
	r := dialogs.Retention{Withdrawn: time.Duration(c.RetentionDays) * 24 * time.Hour,
		Inactive: DefaultRetentionInactive, Notice: DefaultRetentionNotice}
	override(&r.Withdrawn, c.Retention.Withdrawn)
	override(&r.Inactive, c.Retention.Inactive)
	if c.Retention.Notice.Duration == 0 {
		// A short retention_days still gets a notice: half the shorter period at most.
		r.Notice = min(r.Notice, r.Withdrawn/2, r.Inactive/2)
	}
	override(&r.Notice, c.Retention.Notice)
	return r
}

// validateRetention checks [retention] against itself, retention_days and
// delivery.keep_delivered.
func (c *Config) validateRetention() error {
	for _, d := range []struct {
		key string
		d   Duration
	}{{"retention.withdrawn", c.Retention.Withdrawn}, {"retention.inactive", c.Retention.Inactive},
		{"retention.notice", c.Retention.Notice}, {"retention.delivered", c.Retention.Delivered}} {
		if d.d.Duration < 0 {
			return configError(errs.EINVALID, d.key, "must not be negative")
		}
	}
	if days := time.Duration(c.RetentionDays) * 24 * time.Hour; c.Retention.Withdrawn.Duration > days {
		return configError(errs.EINVALID, "retention.withdrawn", "%s is longer than retention_days (%d days), which the consent notice promises", c.Retention.Withdrawn.Duration, c.RetentionDays)
	}
	if err := c.RetentionPolicy().Validate(); err != nil {
		var pe *errs.Error
		if errors.As(err, &pe) {
			return configError(errs.ErrorCode(err), "retention."+pe.Key, "%s", pe.Reason)
		}
		return configError(errs.EINVALID, "retention", "%v", err)
	}
	if r, k := c.Retention.Delivered.Duration, c.Delivery.KeepDelivered.Duration; r != 0 && k != 0 && r != k {
		return configError(errs.ECONFLICT, "retention.delivered", "%s, but delivery.keep_delivered (its older name) says %s: keep one", r, k)
	}
	return nil
}

// override sets *dst to d when the file set d; zero means "default".
func override(dst *time.Duration, d Duration) {
	if d.Duration != 0 {
		*dst = d.Duration
	}
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

func validateURL(key, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		code := errs.EINVALID
		if raw == "" {
			code = errs.EMISSING
		}
		return configError(code, key, "%q is not an absolute http(s) URL", raw)
	}
	return nil
}

func validateSecretEnv(key string, names []string) error {
	if len(names) == 0 {
		return configError(errs.EMISSING, key, "name at least one environment variable holding a whsec_ secret")
	}
	for _, n := range names {
		if !envName.MatchString(n) {
			return configError(errs.EINVALID, key, "%q is not an environment variable name", n)
		}
	}
	return nil
}

func validateEndpoints(key string, e Embassy) error {
	if e.PullOnly && (e.WebhookURL != "" || e.SecondaryURL != "" || len(e.SecretEnv) > 0 || len(e.Partners) > 0) {
		return configError(errs.ECONFLICT, key+".pull_only", "embassy %q is pull_only but also names webhook_url, "+
			"secondary_url, secret_env or partners: remove pull_only to deliver webhooks, or the webhook keys to pull", e.ID)
	}
	if e.WebhookURL == "" {
		if e.SecondaryURL != "" || len(e.Partners) > 0 {
			return configError(errs.EMISSING, key+".webhook_url", "missing, but a secondary URL or partners are set")
		}
		return nil
	}
	if err := validateURL(key+".webhook_url", e.WebhookURL); err != nil {
		return err
	}
	if e.SecondaryURL != "" {
		if err := validateURL(key+".secondary_url", e.SecondaryURL); err != nil {
			return err
		}
	}
	if err := validateSecretEnv(key+".secret_env", e.SecretEnv); err != nil {
		return err
	}
	ids := map[string]bool{}
	for j, p := range e.Partners {
		pk := fmt.Sprintf("%s.partner[%d]", key, j)
		switch {
		case !embassyID.MatchString(p.ID):
			return configError(errs.EINVALID, pk+".id", "%q must be lower-case letters, digits and dashes", p.ID)
		case ids[p.ID]:
			return configError(errs.ECONFLICT, pk+".id", "%q is used twice", p.ID)
		case len(p.Events) == 0:
			return configError(errs.EMISSING, pk+".events", "list the event types this partner receives")
		}
		ids[p.ID] = true
		if err := validateURL(pk+".url", p.URL); err != nil {
			return err
		}
		if err := validateSecretEnv(pk+".secret_env", p.SecretEnv); err != nil {
			return err
		}
		for _, t := range p.Events {
			if !slices.Contains(escalation.PartnerTypes, t) {
				return configError(errs.EINVALID, pk+".events", "%q is not an event type", t)
			}
		}
	}
	return nil
}

// Endpoints resolves every webhook endpoint, reading its secrets from the
// environment through getenv. With requireURLs (serve), an embassy without
// a webhook_url is an error unless it is pull_only, because its escalations
// would otherwise wait in the outbox with no alarm; without requireURLs
// (demo) it is skipped and the caller supplies a receiver. A missing or
// malformed secret is an error naming the key and the variable.
func (c *Config) Endpoints(getenv func(string) string, requireURLs bool) ([]webhook.Endpoint, error) {
	secrets := func(key string, names []string) ([][]byte, error) {
		var keys [][]byte
		for _, n := range names {
			v := getenv(n)
			if v == "" {
				return nil, &Error{Code: errs.EMISSING, File: c.Name, Key: key, Reason: fmt.Sprintf("environment variable %s is not set", n)}
			}
			k, err := webhook.ParseSecrets(v)
			if err != nil {
				return nil, &Error{Code: errs.EINVALID, File: c.Name, Key: key, Reason: fmt.Sprintf("environment variable %s: %v", n, err)}
			}
			keys = append(keys, k...)
		}
		return keys, nil
	}
	var out []webhook.Endpoint
	for i, e := range c.Embassies {
		key := fmt.Sprintf("embassy[%d]", i)
		if e.WebhookURL == "" {
			if requireURLs && !e.PullOnly {
				return nil, &Error{Code: errs.EMISSING, File: c.Name, Key: key + ".webhook_url", Reason: fmt.Sprintf("missing for embassy %q: "+
					"its escalations would wait undelivered. Set webhook_url and secret_env (docs/first-delivery.md), "+
					"or pull_only = true if this embassy will fetch its events from the event API", e.ID)}
			}
			continue
		}
		keys, err := secrets(key+".secret_env", e.SecretEnv)
		if err != nil {
			return nil, err
		}
		primary := webhook.Endpoint{ID: e.ID, URL: e.WebhookURL, Secrets: keys, Embassy: e.ID}
		if e.SecondaryURL != "" {
			primary.Secondary = e.ID + "/secondary"
			out = append(out, webhook.Endpoint{ID: primary.Secondary, URL: e.SecondaryURL, Secrets: keys, Embassy: e.ID, Backup: true})
		}
		out = append(out, primary)
		for j, p := range e.Partners {
			pk, err := secrets(fmt.Sprintf("%s.partner[%d].secret_env", key, j), p.SecretEnv)
			if err != nil {
				return nil, err
			}
			out = append(out, webhook.Endpoint{ID: e.ID + "/partner/" + p.ID, URL: p.URL, Secrets: pk, Embassy: e.ID, Events: p.Events})
		}
	}
	return out, nil
}

// ClearEndpoints forgets every embassy's webhook URLs, secrets, partners
// and pull_only, for a caller that brings its own receiver: the demo run on
// the built-in example, whose URLs are placeholders.
func (c *Config) ClearEndpoints() {
	for i := range c.Embassies {
		e := &c.Embassies[i]
		e.WebhookURL, e.SecondaryURL, e.SecretEnv, e.Partners, e.PullOnly = "", "", nil, nil, false
	}
}

// DeliveryPolicy is webhook.DefaultPolicy with the [delivery] overrides.
func (c *Config) DeliveryPolicy() webhook.Policy {
	p := webhook.DefaultPolicy()
	override(&p.Timeout, c.Delivery.Timeout)
	override(&p.SecondaryAfter, c.Delivery.SecondaryAfter)
	override(&p.GiveUpAfter, c.Delivery.GiveUpAfter)
	override(&p.KeepDelivered, c.Delivery.KeepDelivered)
	override(&p.KeepDelivered, c.Retention.Delivered)
	override(&p.HeartbeatEvery, c.Delivery.HeartbeatEvery)
	return p
}

func (t Telegram) validate() error {
	if t.APIURL != "" {
		if err := validateURL("telegram.api_url", t.APIURL); err != nil {
			return err
		}
	}
	switch t.Mode {
	case "", "polling":
	case "webhook":
		if err := validateURL("telegram.webhook_url", t.WebhookURL); err != nil {
			return err
		}
		if !envName.MatchString(t.WebhookSecretEnv) {
			code := errs.EINVALID
			if t.WebhookSecretEnv == "" {
				code = errs.EMISSING
			}
			return configError(code, "telegram.webhook_secret_env", "name the environment variable holding the webhook secret")
		}
		if t.Listen == "" {
			return configError(errs.EMISSING, "telegram.listen", "missing: the local address to serve the webhook on, such as \":8443\"")
		}
	default:
		return configError(errs.EINVALID, "telegram.mode", "%q: use \"polling\" or \"webhook\"", t.Mode)
	}
	if t.GlobalRate < 0 || t.GlobalRate > 30 {
		return configError(errs.EINVALID, "telegram.global_rate", "must be between 0 (default 30) and 30 messages a second")
	}
	if t.PerChatInterval.Duration < 0 {
		return configError(errs.EINVALID, "telegram.per_chat_interval", "must not be negative")
	}
	if t.PaidBroadcastRate < 0 || t.PaidBroadcastRate > 1000 || math.IsNaN(t.PaidBroadcastRate) {
		return configError(errs.EINVALID, "telegram.paid_broadcast_rate", "must be between 0 (default 1000) and 1000 messages a second (Telegram's paid broadcast limit)")
	}
	if t.PaidBroadcastRate > 0 && !t.AllowPaidBroadcast {
		return configError(errs.EINVALID, "telegram.paid_broadcast_rate", "is set but allow_paid_broadcast is not: set allow_paid_broadcast = true to pay for the higher rate, or remove paid_broadcast_rate")
	}
	return nil
}
